"""Configuration: every variable, its default, the required ones, and each validation rule (issue point 8)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from stream_processor.config import VARIABLES, ConfigurationError, Settings, load_settings

API_KEY = "eyJhbGciOi.super-secret-momento-key.XyZ123"
BASE = {"CACHE_NAME": "weather-cache", "TOPIC_NAME": "weather-changes", "MOMENTO_API_KEY": API_KEY}


def load(**overrides: str | None) -> Settings:
    """Settings from BASE with overrides (None removes a variable)."""
    env = {**BASE, **overrides}
    return load_settings({name: value for name, value in env.items() if value is not None})


def error_of(**overrides: str | None) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load(**overrides)
    return str(raised.value)


# --- the contract: which variables exist and their defaults -------------------------------------------------------


def test_every_variable_of_the_issue_is_declared_with_its_default() -> None:
    declared = {variable.name: variable for variable in VARIABLES}
    expected_defaults = {
        "CACHE_NAME": None,
        "TOPIC_NAME": None,
        "KEY_TEMPLATE": None,
        "DEFAULT_TTL_SECONDS": "3600",
        "MAX_TTL_SECONDS": "86400",
        "TTL_ATTRIBUTE": None,
        "INCLUDE_ATTRIBUTES": None,
        "EXCLUDE_ATTRIBUTES": None,
        "TOPIC_MAX_BYTES": "4096",
        "TOPIC_PACKING": "off",
        "MAX_IN_FLIGHT": "64",
        "DLQ_URL": None,
        "MOMENTO_API_KEY_SECRET": None,
        "MOMENTO_API_KEY": None,
        "MOMENTO_ENDPOINT": None,
        "MOMENTO_LOCAL_ENDPOINT": None,
    }
    assert {name: declared[name].default for name in expected_defaults if name in declared} == expected_defaults
    assert {name for name, variable in declared.items() if variable.required} == {"CACHE_NAME", "TOPIC_NAME"}
    assert all(variable.meaning.strip() for variable in VARIABLES)
    assert len(declared) == len(VARIABLES), "a variable is declared twice"


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers every name the loader looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.values[name]

    def get(self, name, default=None):
        self.read.add(name)
        return self.values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_the_loader_reads_only_declared_variables() -> None:
    environ = RecordingEnviron(dict(BASE))
    load_settings(environ)
    assert environ.read, "the loader read nothing from the environment it was given"
    assert environ.read <= {variable.name for variable in VARIABLES}


def test_defaults_apply_when_only_the_required_variables_are_set() -> None:
    settings = load()
    assert settings.cache_name == "weather-cache"
    assert settings.topic_name == "weather-changes"
    assert settings.key_template is None
    assert settings.default_ttl_seconds == 3600
    assert settings.max_ttl_seconds == 86400
    assert settings.ttl_attribute is None
    assert settings.include_attributes is None
    assert settings.exclude_attributes == frozenset()
    assert settings.topic_max_bytes == 4096
    assert settings.topic_packing is False
    assert settings.max_in_flight == 64
    assert settings.dlq_url is None


def test_every_variable_is_read_when_set() -> None:
    settings = load(
        KEY_TEMPLATE="weather:{Location}",
        DEFAULT_TTL_SECONDS="600",
        MAX_TTL_SECONDS="7200",
        TTL_ATTRIBUTE="ExpiresAt",
        INCLUDE_ATTRIBUTES="Location, Temperature,Conditions",
        EXCLUDE_ATTRIBUTES="Secret",
        TOPIC_MAX_BYTES="2048",
        TOPIC_PACKING="on",
        MAX_IN_FLIGHT="8",
        DLQ_URL="https://sqs.us-east-1.amazonaws.com/123456789012/stream-dlq",
        MOMENTO_ENDPOINT="cell-4-us-east-1-1.prod.a.momentohq.com",
    )
    assert settings.key_template == "weather:{Location}"
    assert settings.default_ttl_seconds == 600
    assert settings.max_ttl_seconds == 7200
    assert settings.ttl_attribute == "ExpiresAt"
    assert settings.include_attributes == frozenset({"Location", "Temperature", "Conditions"})
    assert settings.exclude_attributes == frozenset({"Secret"})
    assert settings.topic_max_bytes == 2048
    assert settings.topic_packing is True
    assert settings.max_in_flight == 8
    assert settings.dlq_url == "https://sqs.us-east-1.amazonaws.com/123456789012/stream-dlq"
    assert settings.momento.api_key == API_KEY
    assert settings.momento.endpoint == "cell-4-us-east-1-1.prod.a.momentohq.com"
    assert not settings.momento.is_local


def test_the_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable.name, raising=False)
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_IN_FLIGHT", "5")
    assert load_settings().max_in_flight == 5


# --- required variables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CACHE_NAME", "TOPIC_NAME"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_required_variable_stops_start_up_naming_it(name: str, value: str | None) -> None:
    message = error_of(**{name: value})
    assert name in message
    assert "required" in message


# --- numbers -----------------------------------------------------------------------------------------------------

NUMBERS = ["DEFAULT_TTL_SECONDS", "MAX_TTL_SECONDS", "TOPIC_MAX_BYTES", "MAX_IN_FLIGHT"]


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", ["0", "-1", "1.5", "ten", "12abc", "0x10"])
def test_numbers_must_be_positive_integers(name: str, value: str) -> None:
    # MAX_TTL_SECONDS large enough for the default TTL, so only the variable under test is wrong
    overrides = {"DEFAULT_TTL_SECONDS": "1"} if name == "MAX_TTL_SECONDS" else {}
    message = error_of(**overrides, **{name: value})
    assert name in message
    assert "positive integer" in message
    assert repr(value) in message or value in message


@pytest.mark.parametrize(
    ("name", "attribute", "value"),
    [
        ("DEFAULT_TTL_SECONDS", "default_ttl_seconds", 60),
        ("MAX_TTL_SECONDS", "max_ttl_seconds", 43200),
        ("TOPIC_MAX_BYTES", "topic_max_bytes", 1024),
        ("MAX_IN_FLIGHT", "max_in_flight", 1),
    ],
)
def test_numbers_accept_positive_integers_with_surrounding_space(name: str, attribute: str, value: int) -> None:
    assert getattr(load(**{name: f" {value} "}), attribute) == value


@pytest.mark.parametrize(("value", "packed"), [("on", True), ("ON", True), (" On ", True), ("off", False), ("", False)])
def test_topic_packing_is_on_or_off(value: str, packed: bool) -> None:
    assert load(TOPIC_PACKING=value).topic_packing is packed


@pytest.mark.parametrize("value", ["yes", "true", "1", "packed", "json"])
def test_any_other_topic_packing_stops_start_up_naming_the_variable(value: str) -> None:
    assert error_of(TOPIC_PACKING=value) == f"TOPIC_PACKING must be 'on' or 'off', got {value!r}"


def test_default_ttl_above_max_ttl_names_both_variables() -> None:
    message = error_of(DEFAULT_TTL_SECONDS="7200", MAX_TTL_SECONDS="3600")
    assert "DEFAULT_TTL_SECONDS" in message
    assert "MAX_TTL_SECONDS" in message


def test_a_lower_max_ttl_conflicts_with_the_default_ttl_default() -> None:
    message = error_of(MAX_TTL_SECONDS="600")  # DEFAULT_TTL_SECONDS defaults to 3600
    assert "DEFAULT_TTL_SECONDS" in message
    assert "MAX_TTL_SECONDS" in message


def test_default_ttl_equal_to_max_ttl_is_fine() -> None:
    settings = load(DEFAULT_TTL_SECONDS="600", MAX_TTL_SECONDS="600")
    assert (settings.default_ttl_seconds, settings.max_ttl_seconds) == (600, 600)


# --- Momento connection ------------------------------------------------------------------------------------------

SOURCES = {
    "MOMENTO_API_KEY_SECRET": "prod/momento-api-key",
    "MOMENTO_API_KEY": API_KEY,
    "MOMENTO_LOCAL_ENDPOINT": "127.0.0.1:4443",
}


def sources(*names: str) -> dict[str, str | None]:
    return {name: (SOURCES[name] if name in names else None) for name in SOURCES}


def test_no_momento_source_stops_start_up_naming_the_choices() -> None:
    message = error_of(**sources())
    for name in SOURCES:
        assert name in message


@pytest.mark.parametrize(
    "chosen",
    [
        ("MOMENTO_API_KEY_SECRET", "MOMENTO_API_KEY"),
        tuple(SOURCES),
    ],
)
def test_more_than_one_key_source_stops_start_up(chosen: tuple[str, ...]) -> None:
    message = error_of(**sources(*chosen))
    assert all(name in message for name in ("MOMENTO_API_KEY_SECRET", "MOMENTO_API_KEY"))
    assert API_KEY not in message


@pytest.mark.parametrize("key_source", ["MOMENTO_API_KEY_SECRET", "MOMENTO_API_KEY"])
def test_a_local_endpoint_with_a_key_source_sends_that_key_as_the_token(key_source: str) -> None:
    momento = load(**sources(key_source, "MOMENTO_LOCAL_ENDPOINT")).momento
    assert momento.is_local
    assert (momento.local_host, momento.local_port) == ("127.0.0.1", 4443)
    assert (momento.api_key_secret, momento.api_key) == (
        ("prod/momento-api-key", None) if key_source == "MOMENTO_API_KEY_SECRET" else (None, API_KEY)
    )
    assert API_KEY not in repr(momento)


def test_a_local_endpoint_excludes_a_momento_endpoint() -> None:
    message = error_of(**sources("MOMENTO_LOCAL_ENDPOINT"), MOMENTO_ENDPOINT="cell-1.example.momentohq.com")
    assert "MOMENTO_ENDPOINT" in message and "MOMENTO_LOCAL_ENDPOINT" in message


def test_the_secret_source() -> None:
    momento = load(**sources("MOMENTO_API_KEY_SECRET")).momento
    assert momento.api_key_secret == "prod/momento-api-key"
    assert momento.api_key is None
    assert not momento.is_local


def test_the_api_key_source_with_an_endpoint() -> None:
    momento = load(**sources("MOMENTO_API_KEY"), MOMENTO_ENDPOINT="cell-1.example.momentohq.com").momento
    assert momento.api_key == API_KEY
    assert momento.endpoint == "cell-1.example.momentohq.com"
    assert momento.api_key_secret is None


@pytest.mark.parametrize(
    ("endpoint", "host", "port"),
    [("127.0.0.1:4443", "127.0.0.1", 4443), ("localhost:8080", "localhost", 8080), ("[::1]:9000", "::1", 9000)],
)
def test_a_local_endpoint_needs_no_key(endpoint: str, host: str, port: int) -> None:
    momento = load(**{**sources(), "MOMENTO_LOCAL_ENDPOINT": endpoint}).momento
    assert momento.is_local
    assert (momento.local_host, momento.local_port) == (host, port)
    assert momento.api_key is None
    assert momento.api_key_secret is None


@pytest.mark.parametrize(
    "endpoint",
    ["localhost", "localhost:", ":8080", "localhost:0", "localhost:70000", "http://localhost:8080", "local host:80"],
)
def test_a_bad_local_endpoint_stops_start_up(endpoint: str) -> None:
    message = error_of(**{**sources(), "MOMENTO_LOCAL_ENDPOINT": endpoint})
    assert "MOMENTO_LOCAL_ENDPOINT" in message
    assert "host:port" in message


def test_the_api_key_never_appears_in_the_settings_repr_or_str() -> None:
    settings = load(**sources("MOMENTO_API_KEY"), MOMENTO_ENDPOINT="cell-1.example.momentohq.com")
    for text in (repr(settings), str(settings), repr(settings.momento), str(settings.momento), f"{settings}"):
        assert API_KEY not in text
        assert "super-secret" not in text
    assert "cell-1.example.momentohq.com" in repr(settings.momento)  # the repr still says where it connects


# --- KEY_TEMPLATE ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["{Location}", "weather:{Location}", "{table}#{pk}#{sk}", "{sk}/{pk}"])
def test_valid_key_templates_are_kept(template: str) -> None:
    assert load(KEY_TEMPLATE=template).key_template == template


@pytest.mark.parametrize(
    "template",
    [
        "no-placeholders",  # every item would share one key
        "{table}",  # names no key attribute: the whole table in one key
        "{}",  # positional: names no attribute
        "{0}",  # positional index: str.format cannot fill it from attribute names
        "{pk.name}",  # attribute access
        "{pk[0]}",  # indexing
        "{pk",  # unbalanced
        "pk}",
    ],
)
def test_invalid_key_templates_stop_start_up(template: str) -> None:
    assert "KEY_TEMPLATE" in error_of(KEY_TEMPLATE=template)


def test_a_blank_key_template_means_the_default_key() -> None:
    assert load(KEY_TEMPLATE="  ").key_template is None


# --- attribute lists ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["INCLUDE_ATTRIBUTES", "EXCLUDE_ATTRIBUTES"])
def test_attribute_lists_are_comma_lists_with_space_and_empty_parts_ignored(name: str) -> None:
    settings = load(**{name: " Temperature , Conditions,,Humidity "})
    value = settings.include_attributes if name == "INCLUDE_ATTRIBUTES" else settings.exclude_attributes
    assert value == frozenset({"Temperature", "Conditions", "Humidity"})


@pytest.mark.parametrize("name", ["INCLUDE_ATTRIBUTES", "EXCLUDE_ATTRIBUTES"])
def test_an_attribute_list_of_only_commas_is_an_error(name: str) -> None:
    assert name in error_of(**{name: " , ,"})
