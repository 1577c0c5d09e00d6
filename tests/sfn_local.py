"""Run the rendered benchmark state machine in moto's Step Functions interpreter, with three extensions.

Why moto's interpreter: with ``execute_state_machine`` on, moto 5 runs definitions in its port of
LocalStack's ASL interpreter (JSONPath, intrinsics, Map, Choice, Wait, Catch/Retry, ResultSelector), and
its ``aws-sdk:*`` and ``sns:publish`` tasks reach moto's services through real boto3 calls. That is more
faithful than an interpreter of our own, so the only code here fills the gaps that matter (and records
what a test needs to see):

1. ``lambda`` tasks: moto would run the function in Docker (none here). :class:`LocalLambdas` answers the
   interpreter's Lambda ``invoke`` in-process with OUR handlers (``lambda/<name>/handler.py``) and wraps
   an uncaught exception as Lambda does (``FunctionError: Unhandled``, ``errorType``/``errorMessage``),
   so the definition's Catch sees the same error names as in AWS.
2. SageMaker instance types: moto's ``CreateEndpointConfig`` knows no g5/p4d types; the catalog's list
   replaces moto's (an unknown type is still refused).
3. Endpoint status and faults (:class:`SageMakerStandIn`): endpoints start in the status the test asks
   for (``InService``, ``Creating`` forever, or ``Failed``), and named SageMaker or S3 calls fail with
   the service's own error type, so a failure can be injected at every step, always or only the first
   n times (a transient error). The stand-in also counts the endpoints alive at once.
4. Error names: moto's interpreter names a failed ``aws-sdk:sagemaker`` call as Step Functions does
   ("<Service>.<ErrorName>Exception"; an error SageMaker's model does not declare, such as ValidationException
   or ThrottlingException, "<Service>.<Service>Exception"), but with the service in lower case
   ("sagemaker.sagemakerException"), because its table of service error names has no SageMaker entry.
   :func:`pascal_case_service_errors` adds that entry, which changes the case and nothing else (it checks so);
   the names the definition's Retry and Catch see are moto's.
5. Retry waits are recorded instead of slept (:func:`record_retry_waits`), so a test sees the backoff.
6. An execution stopped inside a Map ends ABORTED (:func:`aborts_stay_aborted`; moto ends it FAILED).

Every patch is applied with pytest's ``monkeypatch`` by the fixtures of the test module, so it ends with
the test. Wait states are set to 0 s and level durations shortened in the test's copy of the definition
(moto really sleeps); nothing else in the definition is changed.

Not modelled: IAM (moto does not enforce the role's policies; the template tests check them), real
endpoint timing and cost, the 256 KB payload limit, Lambda timeouts and concurrency limits, and
``DeleteEndpoint`` on an endpoint still ``Creating`` (moto deletes it; SageMaker may refuse until it
turns ``Failed``, which is what the janitor is for).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from catalog.instances import INSTANCES

Handler = Callable[[dict[str, Any], object], Any]


def zero_waits(definition: dict[str, Any]) -> dict[str, Any]:
    """A copy with every Wait state's Seconds set to 0, in nested Map processors too."""
    copy: dict[str, Any] = json.loads(json.dumps(definition))

    def visit(states: dict[str, Any]) -> None:
        for state in states.values():
            if state["Type"] == "Wait" and "Seconds" in state:
                state["Seconds"] = 0
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                visit(processor["States"])

    visit(copy["States"])
    return copy


# --- 1. Lambda invoke in-process ------------------------------------------------------------------------


@dataclass
class LocalLambdas:
    """Function ARN -> handler; ``crash`` decides, per event, whether the runtime fails the invocation."""

    handlers: dict[str, Handler]
    crash: Callable[[str, dict[str, Any]], BaseException | None] = lambda arn, event: None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0  # most invocations running at once
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, **parameters: Any) -> dict[str, Any]:
        name = str(parameters["FunctionName"])
        raw = parameters.get("Payload") or b"{}"
        event = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        with self._lock:
            self.calls.append((name, event))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return self._invoke(name, event)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        handler = self.handlers.get(name)
        if handler is None:
            raise KeyError(f"no local handler for {name}")  # a test wiring error, not a Lambda failure
        try:
            injected = self.crash(name, event)
            if injected is not None:
                raise injected
            payload: Any = handler(event, None)
            error = None
        except Exception as exc:
            payload = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
            error = "Unhandled"
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(json.dumps(payload).encode()),
        }
        if error:
            response["FunctionError"] = error
        return response

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import (  # noqa: PLC0415
            lambda_eval_utils,
        )

        original = getattr(lambda_eval_utils, "boto_client_for")  # noqa: B009 - not re-exported for mypy
        local = self

        class _Client:
            def invoke(self, **parameters: Any) -> dict[str, Any]:
                return local.invoke(**parameters)

        def client_for(*args: Any, **kwargs: Any) -> Any:
            service = kwargs.get("service", args[0] if args else None)
            return _Client() if service == "lambda" else original(*args, **kwargs)

        monkeypatch.setattr(lambda_eval_utils, "boto_client_for", client_for)


# --- 2 and 3. SageMaker instance types, endpoint status, injected faults ---------------------------------


@dataclass
class SageMakerStandIn:
    """What moto's SageMaker and S3 do differently for one test."""

    endpoint_status: dict[str, str] = field(default_factory=dict)  # regex of names -> status it keeps
    fail: dict[str, str] = field(default_factory=dict)  # backend method -> regex of names that fail
    # backend method -> the error code SageMaker answers with (default ValidationException, not in SageMaker's
    # model; "ThrottlingException" is not either; "ResourceLimitExceeded" is)
    fail_code: dict[str, str] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)  # backend method -> fail only the first n matches
    describe_calls: int = 0
    live_endpoints: set[str] = field(default_factory=set)
    peak_endpoints: int = 0  # most endpoints in existence at once
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.s3.exceptions import S3ClientError  # noqa: PLC0415
        from moto.s3.models import S3Backend  # noqa: PLC0415
        from moto.sagemaker import models  # noqa: PLC0415
        from moto.sagemaker.exceptions import ValidationError  # noqa: PLC0415

        def validate_instance_type(_: Any, instance_type: str) -> None:
            if instance_type not in INSTANCES:
                raise ValidationError(message=f"Value '{instance_type}' at 'instanceType' is not a known type")

        monkeypatch.setattr(models.FakeEndpointConfig, "validate_instance_type", validate_instance_type)

        endpoint_init = models.FakeEndpoint.__init__
        stand_in = self

        def init(endpoint: Any, *args: Any, **kwargs: Any) -> None:
            endpoint_init(endpoint, *args, **kwargs)
            status = stand_in.status_for(endpoint.endpoint_name)
            endpoint.endpoint_status = status
            if status == "Failed":
                endpoint.failure_reason = "injected: the container did not pass its health check"

        monkeypatch.setattr(models.FakeEndpoint, "__init__", init)

        backend = models.SageMakerModelBackend
        self._count_endpoints(monkeypatch, backend)
        for method, name_arg in (
            ("create_model", "model_name"),
            ("create_endpoint_config", "endpoint_config_name"),
            ("create_endpoint", "endpoint_name"),
            ("describe_endpoint", "endpoint_name"),
        ):
            monkeypatch.setattr(backend, method, self._failing(getattr(backend, method), method, name_arg))

        put_object = S3Backend.put_object

        def failing_put(s3: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
            pattern = stand_in.fail.get("s3.put_object")
            if pattern and re.search(pattern, key_name):
                raise S3ClientError("InternalError", "injected: We encountered an internal error.")
            return put_object(s3, bucket_name, key_name, *args, **kwargs)

        monkeypatch.setattr(S3Backend, "put_object", failing_put)

    def _count_endpoints(self, monkeypatch: pytest.MonkeyPatch, backend: Any) -> None:
        create, delete = backend.create_endpoint, backend.delete_endpoint
        stand_in = self

        def created(sagemaker: Any, *args: Any, **kwargs: Any) -> Any:
            out = create(sagemaker, *args, **kwargs)
            with stand_in._lock:
                stand_in.live_endpoints.add(str(kwargs.get("endpoint_name", args[0] if args else "")))
                stand_in.peak_endpoints = max(stand_in.peak_endpoints, len(stand_in.live_endpoints))
            return out

        def deleted(sagemaker: Any, endpoint_name: str) -> Any:
            out = delete(sagemaker, endpoint_name)
            with stand_in._lock:
                stand_in.live_endpoints.discard(endpoint_name)
            return out

        monkeypatch.setattr(backend, "create_endpoint", created)
        monkeypatch.setattr(backend, "delete_endpoint", deleted)

    def set_status(self, sagemaker: Any, name: str, status: str) -> None:
        """Change a live endpoint's status (``sagemaker``: the account's moto SageMaker backend)."""
        sagemaker.endpoints[name].endpoint_status = status

    def status_for(self, name: str) -> str:
        return next((s for pattern, s in self.endpoint_status.items() if re.search(pattern, name)), "InService")

    def _failing(self, original: Callable[..., Any], method: str, name_arg: str) -> Callable[..., Any]:
        from moto.sagemaker.exceptions import SagemakerClientError  # noqa: PLC0415

        stand_in = self

        def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
            name = str(kwargs.get(name_arg, args[0] if args else ""))
            if method == "describe_endpoint":
                stand_in.describe_calls += 1
            pattern = stand_in.fail.get(method)
            if pattern and re.search(pattern, name) and stand_in._take_failure(method):
                code = stand_in.fail_code.get(method, "ValidationException")
                raise SagemakerClientError(code, f"injected: {method} failed for {name}")
            return original(backend, *args, **kwargs)

        return wrapper

    def _take_failure(self, method: str) -> bool:
        with self._lock:
            left = self.fail_times.get(method)
            if left is None:
                return True
            if left > 0:
                self.fail_times[method] = left - 1
            return left > 0


# --- 4 and 5. Step Functions' error names, retry waits ---------------------------------------------------

# Moto's interpreter spells the service part of an aws-sdk task's error names from this table (lower case when
# the service has no entry); Step Functions writes them in PascalCase ("SageMaker.", developer guide, AWS SDK
# service integrations).
PASCAL_CASE_SERVICES = {"sagemaker": "SageMaker"}


def pascal_case_service_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give moto's table of service error names the PascalCase of these services: a change of case only."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: PLC0415
        state_task_service_aws_sdk as aws_sdk,
    )

    table = getattr(aws_sdk, "_SERVICE_ERROR_NAMES")  # noqa: B009 - private to moto, read on purpose
    for service, name in PASCAL_CASE_SERVICES.items():
        if name.lower() != service:
            raise AssertionError(f"{name!r} is not {service!r} in another case: only case may change")
        monkeypatch.setitem(table, service, name)


def aborts_stay_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aborted execution stays ABORTED, as in AWS. In moto 5.2.5 a Map iteration that is stopped raises a
    failure, which ``set_error`` writes over the stop, so an execution stopped inside a Map ends FAILED."""
    from moto.stepfunctions.parser.asl.eval import environment  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped  # noqa: PLC0415

    set_error = environment.Environment.set_error

    def keep_stop(env: Any, error: Any) -> None:
        if not isinstance(env.program_state(), ProgramStopped):
            set_error(env, error)

    monkeypatch.setattr(environment.Environment, "set_error", keep_stop)


def record_retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retriers' waits, in order, recorded instead of slept."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: PLC0415

    waits: list[float] = []

    class _Clock:
        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)

    monkeypatch.setattr(retrier_decl, "time", _Clock)
    return waits


# --- running an execution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]

    def task_errors(self, action: str) -> list[str]:
        """The error names of the failed attempts of an ``aws-sdk`` task calling ``action``, in order."""
        return [
            e["taskFailedEventDetails"]["error"]
            for e in self.history
            if e.get("taskFailedEventDetails", {}).get("resource") == action
        ]

    def entered(self) -> list[str]:
        """Names of the states entered, in order (Map iterations included)."""
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e and "name" in e["stateEnteredEventDetails"]
        ]


def run_execution(
    sfn: Any, state_machine_arn: str, execution_input: Mapping[str, Any], *, timeout_s: float = 120.0
) -> Execution:
    """Start an execution and wait for it to end (moto runs it on a worker thread)."""
    return wait_for_end(sfn, start_execution(sfn, state_machine_arn, execution_input), timeout_s=timeout_s)


def start_execution(sfn: Any, state_machine_arn: str, execution_input: Mapping[str, Any]) -> str:
    """Its ARN. Named as AWS names an unnamed execution (a UUID); moto would name every one ``None``."""
    started = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=json.dumps(execution_input)
    )
    return str(started["executionArn"])


def wait_for_end(sfn: Any, arn: str, *, timeout_s: float = 120.0) -> Execution:
    """Wait until the execution is no longer RUNNING; its status, output and history."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution still RUNNING after {timeout_s} s")
        time.sleep(0.05)
    history = list(_history(sfn, arn))
    output = described.get("output")
    return Execution(
        arn=arn,
        status=described["status"],
        output=json.loads(output) if output else None,
        error=described.get("error"),
        cause=described.get("cause"),
        history=history,
    )


def _history(sfn: Any, arn: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        yield from page["events"]
        token = page.get("nextToken")
        if not token:
            return
