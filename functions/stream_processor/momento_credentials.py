"""Momento credentials: where the API key comes from (a secret, a variable, none) and the SDK's credential provider.

The secret is read through Powertools Parameters, cached for ``SECRET_MAX_AGE_SECONDS``; ``read_api_key(fresh=True)``
bypasses the cache (key rotation, see ``momento_clients``). A secret that holds no key yet (empty, no value, or
``PLACEHOLDER_API_KEY``) is a configuration error whose message gives the command that puts the key in. The key
itself never appears in an error message.
"""

from __future__ import annotations

import dataclasses
import shlex
import warnings

from momento import CredentialProvider

from stream_processor.config import PLACEHOLDER_API_KEY, ConfigurationError, MomentoConnection

__all__ = ["SECRET_MAX_AGE_SECONDS", "credential_provider", "read_api_key"]

#: How long Powertools may serve the secret from its cache (a re-read after an authentication failure bypasses it).
SECRET_MAX_AGE_SECONDS = 300


def read_api_key(connection: MomentoConnection, *, fresh: bool = False) -> str | None:
    """The Momento API key of a connection: the secret's value, ``MOMENTO_API_KEY``, or None (a local server, no key).

    ``fresh`` reads the secret from Secrets Manager even when Powertools holds it in its cache. An empty secret, one
    without a value or one still holding ``PLACEHOLDER_API_KEY`` raises ``ConfigurationError`` with the command that
    puts the key in.
    """
    secret = connection.api_key_secret
    if not secret:
        if connection.api_key is not None and connection.api_key.strip() == PLACEHOLDER_API_KEY:
            raise ConfigurationError(f"MOMENTO_API_KEY holds the placeholder {PLACEHOLDER_API_KEY}: set it to the key")
        return connection.api_key
    from aws_lambda_powertools.utilities import parameters  # boto3 is only imported when a secret is used

    try:
        value = parameters.get_secret(secret, max_age=SECRET_MAX_AGE_SECONDS, force_fetch=fresh)
    except Exception as error:
        if "can't find the specified secret value" in str(error):  # the secret exists, no value was ever put in it
            raise _no_key_yet(secret, "it has no value") from None
        raise ConfigurationError(
            f"MOMENTO_API_KEY_SECRET: cannot read secret {secret!r}: {type(error).__name__} "
            "(check the secret id and the function's secretsmanager:GetSecretValue permission)"
        ) from None
    if not isinstance(value, str):
        raise ConfigurationError(
            f"MOMENTO_API_KEY_SECRET: secret {secret!r} holds a binary value: store the API key as its secret string"
        )
    key = value.strip()
    if not key:
        raise _no_key_yet(secret, "it is empty")
    if key == PLACEHOLDER_API_KEY:
        raise _no_key_yet(secret, f"it still holds the placeholder {PLACEHOLDER_API_KEY}")
    return key


def _no_key_yet(secret: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"MOMENTO_API_KEY_SECRET: secret {secret!r} holds no Momento API key yet ({why}): put the key in with "
        f"`aws secretsmanager put-secret-value --secret-id {shlex.quote(secret)} --secret-string <your-api-key>`"
    )


def credential_provider(connection: MomentoConnection, api_key: str | None = None) -> CredentialProvider:
    """The SDK credential provider for the configured connection; the key is read (``read_api_key``) unless given."""
    if api_key is None:
        api_key = read_api_key(connection)
    if connection.is_local:
        local = CredentialProvider.for_momento_local(connection.local_host, connection.local_port)
        # The SDK sends auth_token as the `authorization` metadata on any channel, plaintext included.
        return local if api_key is None else dataclasses.replace(local, auth_token=api_key)
    source = "MOMENTO_API_KEY_SECRET" if connection.api_key_secret else "MOMENTO_API_KEY"
    api_key = (api_key or "").strip()
    if not api_key:
        raise ConfigurationError(f"{source} gives an empty Momento API key")
    try:
        if connection.endpoint:
            return CredentialProvider.from_api_key_v2(api_key, connection.endpoint)
        with warnings.catch_warnings():  # legacy keys carry their endpoint; the SDK marks this path deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return CredentialProvider.from_string(api_key)
    except Exception as error:
        hint = "a v2 key with MOMENTO_ENDPOINT" if connection.endpoint else "set MOMENTO_ENDPOINT for v2 keys"
        raise ConfigurationError(
            f"{source} does not hold a usable Momento API key ({type(error).__name__}; {hint})"
        ) from None
