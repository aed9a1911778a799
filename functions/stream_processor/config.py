"""Configuration: read and validate the function's environment variables once per container.

Every variable the package reads is declared in ``VARIABLES`` (name, default, meaning), which is also what the
README's configuration table and the template-agreement test are checked against. A missing or invalid value
raises ``ConfigurationError`` naming the variable and what it expects, so a bad deployment stops at start-up
instead of failing record by record.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "PLACEHOLDER_API_KEY",
    "POWERTOOLS_VARIABLES",
    "VARIABLES",
    "ConfigurationError",
    "MomentoConnection",
    "Settings",
    "Variable",
    "load_settings",
]


#: The value a secret holds before anyone put the Momento API key in it: treated like an empty secret ("no key yet").
PLACEHOLDER_API_KEY = "PUT-YOUR-MOMENTO-API-KEY-HERE"


class ConfigurationError(ValueError):
    """A configuration variable is missing or invalid; the message names it and says what it expects."""


@dataclass(frozen=True)
class Variable:
    """One environment variable of the function: its name, default (None when required or unset) and meaning."""

    name: str
    default: str | None
    meaning: str
    required: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("CACHE_NAME", None, "Momento cache that mirrors the table.", required=True),
    Variable(
        "TOPIC_NAME", None, "Momento topic (in CACHE_NAME) that receives one change message per change.", required=True
    ),
    Variable(
        "KEY_TEMPLATE",
        None,
        "Cache key as a str.format template over the table's key attributes and "
        "{table}; unset: the key values ordered by attribute name, joined with '#'.",
    ),
    Variable("DEFAULT_TTL_SECONDS", "3600", "Cache TTL when the item carries no TTL attribute."),
    Variable("MAX_TTL_SECONDS", "86400", "Upper bound of every cache TTL (Momento on-demand maximum: 24 h)."),
    Variable(
        "TTL_ATTRIBUTE",
        None,
        "Item attribute holding a DynamoDB TTL (epoch seconds); the cache entry "
        "then lives until it, and an already expired item is deleted from the cache.",
    ),
    Variable("INCLUDE_ATTRIBUTES", None, "Comma list: only these attributes go into cache values and messages."),
    Variable(
        "EXCLUDE_ATTRIBUTES", None, "Comma list: these attributes never leave the function (values and messages)."
    ),
    Variable(
        "TOPIC_MAX_BYTES",
        "4096",
        'Largest change message; larger ones are sent without images and with "truncated": true.',
    ),
    Variable(
        "TOPIC_PACKING",
        "off",
        "'on': consecutive change messages are packed into one topic message (a JSON array) of at most "
        "TOPIC_MAX_BYTES; 'off': one topic message per change.",
    ),
    Variable("MAX_IN_FLIGHT", "64", "Most Momento requests in flight at once."),
    Variable(
        "DLQ_URL",
        None,
        "SQS queue that receives poison records; unset: poison records are reported as batch item failures instead.",
    ),
    Variable(
        "MOMENTO_API_KEY_SECRET",
        None,
        "Secrets Manager secret id (name or ARN) whose value is the "
        "Momento API key (read through Powertools Parameters, cached).",
    ),
    Variable("MOMENTO_API_KEY", None, "The Momento API key itself (local use only; prefer the secret)."),
    Variable("MOMENTO_ENDPOINT", None, "Momento endpoint, for API keys that need one (v2 keys)."),
    Variable(
        "TABLE_NAME",
        None,
        "DynamoDB table of the redrive and backfill functions; unset: the table named in the stream ARN (redrive) "
        "or the backfill request.",
    ),
    Variable(
        "MOMENTO_LOCAL_ENDPOINT",
        None,
        "host:port of a plaintext local Momento-compatible server; with MOMENTO_API_KEY_SECRET or MOMENTO_API_KEY "
        "the key is sent to it as the token (in plaintext), otherwise no key is used.",
    ),
)

#: Variables Powertools reads itself; the template sets them and the package relies on them.
POWERTOOLS_VARIABLES: tuple[str, ...] = (
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
)

_DEFAULTS = {v.name: v.default for v in VARIABLES}
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class MomentoConnection:
    """Where the Momento clients connect and with which credential source (never the key itself in a repr)."""

    api_key_secret: str | None = None
    api_key: str | None = None
    endpoint: str | None = None
    local_host: str | None = None
    local_port: int | None = None

    @property
    def is_local(self) -> bool:
        return self.local_host is not None

    def __repr__(self) -> str:  # the key must never reach a log line
        source = f"secret={self.api_key_secret}" if self.api_key_secret else "api_key=<redacted>"
        if self.is_local:
            token = f", {source}" if self.api_key_secret or self.api_key else ""
            return f"MomentoConnection(local={self.local_host}:{self.local_port}{token})"
        return f"MomentoConnection({source}, endpoint={self.endpoint})"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one container."""

    cache_name: str
    topic_name: str
    key_template: str | None
    default_ttl_seconds: int
    max_ttl_seconds: int
    ttl_attribute: str | None
    include_attributes: frozenset[str] | None
    exclude_attributes: frozenset[str]
    topic_max_bytes: int
    topic_packing: bool
    max_in_flight: int
    dlq_url: str | None
    table_name: str | None
    momento: MomentoConnection


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ``ConfigurationError`` naming the first bad variable."""
    env = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        value = env.get(name, _DEFAULTS[name])
        if value is None:
            return None
        value = value.strip()
        return value or None

    def required(name: str) -> str:
        value = text(name)
        if value is None:
            raise ConfigurationError(f"{name} is required: set it to {_meaning(name)}")
        return value

    def positive_int(name: str) -> int:
        raw = text(name)
        if raw is None:
            raw = _DEFAULTS[name]
        try:
            value = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name} must be a positive integer, got {raw!r}") from None
        if value <= 0:
            raise ConfigurationError(f"{name} must be a positive integer, got {raw!r}")
        return value

    def name_list(name: str) -> frozenset[str] | None:
        raw = text(name)
        if raw is None:
            return None
        names = frozenset(part.strip() for part in raw.split(",") if part.strip())
        if not names:
            raise ConfigurationError(f"{name} must be a comma-separated list of attribute names, got {raw!r}")
        return names

    cache_name = required("CACHE_NAME")
    topic_name = required("TOPIC_NAME")
    key_template = text("KEY_TEMPLATE")
    if key_template is not None:
        _check_key_template(key_template)
    default_ttl = positive_int("DEFAULT_TTL_SECONDS")
    max_ttl = positive_int("MAX_TTL_SECONDS")
    if default_ttl > max_ttl:
        raise ConfigurationError(f"DEFAULT_TTL_SECONDS ({default_ttl}) must not exceed MAX_TTL_SECONDS ({max_ttl})")
    include = name_list("INCLUDE_ATTRIBUTES")
    exclude = name_list("EXCLUDE_ATTRIBUTES") or frozenset()
    topic_max_bytes = positive_int("TOPIC_MAX_BYTES")
    if topic_max_bytes < 256:
        raise ConfigurationError(f"TOPIC_MAX_BYTES must be at least 256 bytes, got {topic_max_bytes}")
    return Settings(
        cache_name=cache_name,
        topic_name=topic_name,
        key_template=key_template,
        default_ttl_seconds=default_ttl,
        max_ttl_seconds=max_ttl,
        ttl_attribute=text("TTL_ATTRIBUTE"),
        include_attributes=include,
        exclude_attributes=exclude,
        topic_max_bytes=topic_max_bytes,
        topic_packing=_switch(text, "TOPIC_PACKING"),
        max_in_flight=positive_int("MAX_IN_FLIGHT"),
        dlq_url=text("DLQ_URL"),
        table_name=text("TABLE_NAME"),
        momento=_momento_connection(text),
    )


def _switch(text, name: str) -> bool:
    raw = text(name) or _DEFAULTS[name]
    if raw.lower() not in ("on", "off"):
        raise ConfigurationError(f"{name} must be 'on' or 'off', got {raw!r}")
    return raw.lower() == "on"


def _meaning(name: str) -> str:
    return next(v.meaning for v in VARIABLES if v.name == name).rstrip(".").lower()


def _check_key_template(template: str) -> None:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise ConfigurationError(f"KEY_TEMPLATE is not a valid str.format template: {error}") from None
    if not [field for field in fields if field != "table"]:
        raise ConfigurationError(
            "KEY_TEMPLATE must name at least one key attribute, e.g. '{pk}#{sk}' or 'weather:{Location}'"
        )
    for field in fields:
        # str.format treats a numeric field as a positional argument, which a map of attribute names never fills
        if not field or field.isdigit() or "." in field or "[" in field:
            raise ConfigurationError(
                f"KEY_TEMPLATE placeholders must be plain attribute names like {{pk}}, got {{{field}}}"
            )


def _momento_connection(text) -> MomentoConnection:
    local = text("MOMENTO_LOCAL_ENDPOINT")
    secret = text("MOMENTO_API_KEY_SECRET")
    api_key = text("MOMENTO_API_KEY")
    endpoint = text("MOMENTO_ENDPOINT")
    keys = [name for name, value in (("MOMENTO_API_KEY_SECRET", secret), ("MOMENTO_API_KEY", api_key)) if value]
    if len(keys) > 1 or not (keys or local):
        raise ConfigurationError(
            "set exactly one of MOMENTO_API_KEY_SECRET (Secrets Manager secret id holding the API key), "
            "MOMENTO_API_KEY (the key, local use) or MOMENTO_LOCAL_ENDPOINT (host:port of a local server, "
            "optionally with one of the two key sources for a server that requires a token); "
            f"got {', '.join(keys) if keys else 'none'}"
        )
    if local:
        if endpoint:
            raise ConfigurationError(
                "MOMENTO_ENDPOINT and MOMENTO_LOCAL_ENDPOINT exclude each other: unset one of them"
            )
        match = _HOST_PORT.match(local)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ConfigurationError(f"MOMENTO_LOCAL_ENDPOINT must be host:port, got {local!r}")
        return MomentoConnection(
            api_key_secret=secret, api_key=api_key, local_host=match["host"].strip("[]"), local_port=int(match["port"])
        )
    return MomentoConnection(api_key_secret=secret, api_key=api_key, endpoint=endpoint)
