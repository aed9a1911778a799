"""The mapping's settings, named after the template's event properties and checked against Lambda's ranges."""

from __future__ import annotations

from dataclasses import dataclass

from local_pipeline.lambda_context import function_name_from_arn

from .filtering import FilterCriteria

__all__ = ["DEFAULT_FUNCTION_ARN", "STARTING_POSITIONS", "MappingSettings"]

DEFAULT_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:dynamodb-momento-stream-processor"
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


@dataclass(frozen=True)
class MappingSettings:
    """The mapping's knobs (``filter_patterns``: the ``Pattern`` strings of ``FilterCriteria.Filters``)."""

    batch_size: int = 100
    maximum_retry_attempts: int = 2
    bisect_batch_on_function_error: bool = True
    maximum_record_age_seconds: int = -1
    report_batch_item_failures: bool = True
    starting_position: str = "TRIM_HORIZON"
    function_timeout_seconds: int = 60
    memory_size_mb: int = 256
    function_arn: str = DEFAULT_FUNCTION_ARN
    on_failure_queue_url: str | None = None
    parallelization_factor: int = 1
    filter_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range("batch_size", self.batch_size, 1, 10_000)
        _check_range("maximum_retry_attempts", self.maximum_retry_attempts, -1, 10_000)
        if self.maximum_record_age_seconds != -1:
            _check_range("maximum_record_age_seconds", self.maximum_record_age_seconds, 60, 604_800, "-1 or ")
        _check_range("function_timeout_seconds", self.function_timeout_seconds, 1, 900)
        _check_range("memory_size_mb", self.memory_size_mb, 128, 10_240)
        _check_range("parallelization_factor", self.parallelization_factor, 1, 10)
        if self.starting_position not in STARTING_POSITIONS:
            raise ValueError(f"starting_position must be one of {STARTING_POSITIONS}, got {self.starting_position!r}")
        try:
            function_name_from_arn(self.function_arn)
        except ValueError as exc:
            raise ValueError(f"function_arn: {exc}") from None
        FilterCriteria.from_patterns(self.filter_patterns)
        object.__setattr__(self, "filter_patterns", tuple(self.filter_patterns))  # a list would break hashing


def _check_range(name: str, value: object, low: int, high: int, also: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be {also}an integer from {low} to {high}, got {value!r}")
