"""`make invoke EVENT=path/to/event.json`: one event through the real handler, like `sam local invoke`, without Docker.

The handler (``stream_processor.app.handler``) runs once in this process, in a fresh container, with a Lambda
context shaped like the runtime's and the environment the template gives ``StreamProcessorFunction`` (resolved with
the parameters' defaults; overridden as ``sam local invoke --env-vars`` and the shell would). Momento is a local
server started for the run (``MOMENTO_LOCAL_ENDPOINT``; a key or secret in the overrides is ignored), AWS is moto
with fake credentials in the event's region, and ``DLQ_URL`` (the template's ``DeadLetterQueue``) is an SQS queue in
moto, so poison records are listed; an override that sets ``DLQ_URL`` empty unsets it, and the handler then reports
poison records as batch item failures. Then it prints the response, what the cache holds, the messages published,
the dead-letter queue and the handler's warnings; the full log goes to a file.

Exit status: 0 when the handler returned (whatever it reported), 1 when it raised (a configuration error is one
line), 2 when the event, override or template file cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_pipeline.environment import functions_on_path, quiet_grpc_core

quiet_grpc_core()  # before grpc is imported (by the Momento SDK, below)
functions_on_path()  # `stream_processor` lives in functions/, the Lambda code root

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from local_pipeline.dead_letter_queue import peek_bodies  # noqa: E402
from local_pipeline.environment import fake_aws_environment, scoped_environment  # noqa: E402
from local_pipeline.function_environment import (  # noqa: E402
    FunctionConfig,
    TemplateError,
    function_config,
    load_template,
    read_env_vars_file,
)
from local_pipeline.handler_log import HandlerLog  # noqa: E402
from local_pipeline.invoke_report import InvocationResult, print_result  # noqa: E402
from local_pipeline.lambda_context import LambdaContext, new_log_stream_name  # noqa: E402
from local_pipeline.momento_server import LocalMomentoServer  # noqa: E402

__all__ = ["InvokeOptions", "main", "parse_args", "run_invoke"]

REPOSITORY = Path(__file__).resolve().parent.parent
FUNCTION = "StreamProcessorFunction"
DLQ_NAME = "DeadLetterQueue"  # the template's logical id: a moto queue of that name stands for it
#: Variables make invoke sets itself: Momento is always its local server, never a key or a secret.
MOMENTO_CREDENTIALS = ("MOMENTO_API_KEY", "MOMENTO_API_KEY_SECRET", "MOMENTO_ENDPOINT", "MOMENTO_LOCAL_ENDPOINT")
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


class UsageError(Exception):
    """The event, override or template file cannot be used; the message is the whole explanation."""


@dataclass(frozen=True)
class InvokeOptions:
    event_path: Path
    env_vars_path: Path | None = None
    template_path: Path = REPOSITORY / "template.yaml"
    function: str = FUNCTION
    log_file: Path | None = None


def parse_args(argv: Sequence[str] | None = None) -> InvokeOptions:
    parser = argparse.ArgumentParser(
        prog="python -m local_pipeline.invoke",
        description="Run the stream processor once on an event file, like `sam local invoke`, without Docker: a "
        "local Momento server, moto for AWS, the template's environment.",
    )
    parser.add_argument("event", help="the event: a JSON file (events/*.json, `sam local generate-event` output)")
    parser.add_argument("--env-vars", type=Path, help="overrides in `sam local invoke --env-vars` JSON form")
    parser.add_argument("--template", type=Path, default=InvokeOptions.template_path, help="the SAM template")
    parser.add_argument("--function", default=FUNCTION, help=f"the function's logical id (default: {FUNCTION})")
    parser.add_argument("--log-file", type=Path, help="where the handler's logs go (default: a new temp dir)")
    args = parser.parse_args(argv)
    return InvokeOptions(Path(args.event), args.env_vars, args.template, args.function, args.log_file)


def read_event(path: Path) -> Any:
    if not str(path) or str(path) == ".":
        raise UsageError("no event file given: make invoke EVENT=path/to/event.json [ENV_VARS=events/env.json]")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"event file not found: {path}") from None
    except OSError as error:
        raise UsageError(f"cannot read the event file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"the event file {path} is not valid JSON: {error}") from None


def run_invoke(options: InvokeOptions, *, server: LocalMomentoServer | None = None) -> InvocationResult:
    """Invoke the handler once; ``server``: use this running local Momento server instead of starting one."""
    event = read_event(options.event_path)
    try:
        config = function_config(load_template(options.template_path), options.function, _region(event))
        overrides = read_env_vars_file(options.env_vars_path, options.function) if options.env_vars_path else {}
    except TemplateError as error:
        raise UsageError(str(error)) from None
    environment, notes = _function_environment(config, overrides)
    log_path = options.log_file or Path(tempfile.mkdtemp(prefix="dynamodb-momento-invoke-")) / "handler.log"
    cache_name = environment.get("CACHE_NAME", "")
    topic_name = environment.get("TOPIC_NAME", "")
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(LocalMomentoServer())
        if cache_name:
            server.create_cache(cache_name)  # the cache a deployment must have created (it must exist)
        stack.enter_context(fake_aws_environment(_region(event)))
        stack.enter_context(mock_aws())
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"] if environment.get("DLQ_URL") else None
        if dlq_url:
            environment["DLQ_URL"] = dlq_url
        environment["MOMENTO_LOCAL_ENDPOINT"] = server.endpoint
        context = _context(event, config)
        # The function sees its own variables only: none of the shell's (a key exported there) that it does not declare.
        unset = [name for name in (*_processor_variables(), *MOMENTO_CREDENTIALS) if name not in environment]
        stack.enter_context(scoped_environment({**environment, **_runtime_variables(config, context)}, remove=unset))
        log = stack.enter_context(HandlerLog(log_path).capture(_log_level(environment)))
        response, error = _invoke(log, event, context)
        items = server.cache_items(cache_name) if cache_name else {}
        return InvocationResult(
            options=options,
            config=config,
            environment=environment,
            overrides=overrides,
            notes=notes,
            event=event,
            response=response,
            error=error,
            cache_name=cache_name,
            topic_name=topic_name,
            cache={key: (value, server.ttl_remaining_seconds(cache_name, key)) for key, value in items.items()},
            messages=server.published(cache_name, topic_name) if cache_name and topic_name else [],
            dead_letters=peek_bodies(sqs, dlq_url) if dlq_url else None,
            totals=log.totals(),
            log_entries=log.entries(),
            log_path=log_path,
        )


def _invoke(log: HandlerLog, event: Any, context: LambdaContext) -> tuple[Any, str | None]:
    """The handler's response, or the error it raised (one line for a configuration error, else the traceback)."""
    from stream_processor import app
    from stream_processor.config import ConfigurationError

    app.processor.cache_clear()  # a fresh container, configured from this environment
    try:
        with warnings.catch_warnings():
            # Powertools warns that no metrics were published when start-up fails: the error itself says more.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            return log.wrap(app.handler)(event, context), None
    except ConfigurationError as error:
        return None, f"configuration error: {error}"
    except Exception:
        return None, traceback.format_exc().rstrip()
    finally:
        with contextlib.suppress(ConfigurationError):
            if app.processor.cache_info().currsize:
                app.processor().momento.close()
        app.processor.cache_clear()


def _function_environment(config: FunctionConfig, overrides: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The template's variables, then the shell's, then the overrides (only declared names, as sam local)."""
    environment = dict(config.environment)
    from_user = {name: os.environ[name] for name in environment if name in os.environ}
    from_user.update({name: value for name, value in overrides.items() if name in environment})
    environment.update(from_user)
    notes = []
    undeclared = sorted(name for name in overrides if name not in environment)
    if undeclared:
        notes.append(f"not declared by the template, so not set (as sam local): {', '.join(undeclared)}")
    # The template's secret reference means nothing here; a key or endpoint you set is ignored, and said so.
    ignored = sorted(name for name in MOMENTO_CREDENTIALS if from_user.get(name))
    for name in MOMENTO_CREDENTIALS:
        environment.pop(name, None)
    if ignored:
        notes.append(f"ignored: {', '.join(ignored)} (make invoke always uses its local Momento server)")
    if config.unresolved:
        notes.append(f"only AWS knows these, left empty: {', '.join(config.unresolved)}")
    return {name: value for name, value in environment.items() if value != ""}, notes


def _processor_variables() -> list[str]:
    from stream_processor.config import POWERTOOLS_VARIABLES, VARIABLES

    return [*(variable.name for variable in VARIABLES), *POWERTOOLS_VARIABLES]


def _records(event: Any) -> list[dict[str, Any]]:
    records = event.get("Records") if isinstance(event, dict) else None
    return [record for record in records if isinstance(record, dict)] if isinstance(records, list) else []


def _region(event: Any) -> str:
    for record in _records(event):
        region = record.get("awsRegion")
        if isinstance(region, str) and region:
            return region
    return DEFAULT_REGION


def _context(event: Any, config: FunctionConfig) -> LambdaContext:
    """A context for the function in the stream's partition, region and account (from the event's ARN)."""
    partition, region, account = "aws", _region(event), DEFAULT_ACCOUNT
    for record in _records(event):
        parts = str(record.get("eventSourceARN", "")).split(":")
        if len(parts) >= 5 and parts[0] == "arn" and parts[1] and parts[4]:
            partition, account = parts[1], parts[4]
            break
    return LambdaContext.for_invocation(
        function_arn=f"arn:{partition}:lambda:{region}:{account}:function:{config.logical_id}",
        timeout_seconds=config.timeout_seconds,
        memory_size_mb=config.memory_size_mb,
        log_stream_name=new_log_stream_name(time.time()),
    )


def _runtime_variables(config: FunctionConfig, context: LambdaContext) -> dict[str, str]:
    """What the Lambda runtime sets besides the function's own variables (credentials: moto's)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": context.memory_limit_in_mb,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config.timeout_seconds),
        "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
        "_HANDLER": config.handler,
    }


def _log_level(environment: Mapping[str, str]) -> int:
    level = logging.getLevelName(environment.get("POWERTOOLS_LOG_LEVEL", "INFO").upper())
    return level if isinstance(level, int) else logging.INFO


@contextlib.contextmanager
def _errors_as_one_line() -> Iterator[None]:
    try:
        yield
    except UsageError as error:
        print(f"make invoke: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Sequence[str] | None = None, *, server: LocalMomentoServer | None = None) -> int:
    """Invoke, print what happened, return the exit status (1 when the handler raised)."""
    options = parse_args(argv)
    with _errors_as_one_line():
        result = run_invoke(options, server=server)
    try:
        print_result(result, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # the output went to `head` or the like, which stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if result.error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
