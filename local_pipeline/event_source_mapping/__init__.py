"""Lambda's DynamoDB Streams event source mapping, emulated (the model and its limits: ``mapping.py``)."""

from stream_processor.stream_records import lambda_record

from .filtering import FilterCriteria
from .lanes import lane_of
from .mapping import Handler, StreamEventSourceMapping
from .on_failure import FailureCondition, on_failure_message
from .reports import DiscardedBatch, Invocation, MappingReport
from .responses import InvocationOutcome
from .settings import DEFAULT_FUNCTION_ARN, MappingSettings

__all__ = [
    "DEFAULT_FUNCTION_ARN",
    "DiscardedBatch",
    "FailureCondition",
    "FilterCriteria",
    "Handler",
    "Invocation",
    "InvocationOutcome",
    "MappingReport",
    "MappingSettings",
    "StreamEventSourceMapping",
    "lambda_record",
    "lane_of",
    "on_failure_message",
]
