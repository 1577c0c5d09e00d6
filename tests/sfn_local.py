"""Run the rendered benchmark state machine in moto's Step Functions interpreter, with three extensions.

Why moto's interpreter: with ``execute_state_machine`` on, moto 5 runs definitions in its port of
LocalStack's ASL interpreter (JSONPath, intrinsics, Map, Choice, Wait, Catch/Retry, ResultSelector), and
its ``aws-sdk:*`` and ``sns:publish`` tasks reach moto's services through real boto3 calls. That is more
faithful than an interpreter of our own, so the only code here fills the gaps that matter:

1. ``lambda`` tasks: moto would run the function in Docker (none here). :class:`LocalLambdas` answers the
   interpreter's Lambda ``invoke`` in-process with OUR handlers (``lambda/<name>/handler.py``) and wraps
   an uncaught exception as Lambda does (``FunctionError: Unhandled``, ``errorType``/``errorMessage``),
   so the definition's Catch sees the same error names as in AWS.
2. SageMaker instance types: moto's ``CreateEndpointConfig`` knows no g5/p4d types; the catalog's list
   replaces moto's (an unknown type is still refused).
3. Endpoint status and faults (:class:`SageMakerStandIn`): endpoints start in the status the test asks
   for (``InService``, ``Creating`` forever, or ``Failed``), and named SageMaker or S3 calls fail with
   the service's own error type, so a failure can be injected at every step.

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
import time
import traceback
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

    def invoke(self, **parameters: Any) -> dict[str, Any]:
        name = str(parameters["FunctionName"])
        raw = parameters.get("Payload") or b"{}"
        event = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        self.calls.append((name, event))
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
    describe_calls: int = 0

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

    def status_for(self, name: str) -> str:
        return next((s for pattern, s in self.endpoint_status.items() if re.search(pattern, name)), "InService")

    def _failing(self, original: Callable[..., Any], method: str, name_arg: str) -> Callable[..., Any]:
        from moto.sagemaker.exceptions import ValidationError  # noqa: PLC0415

        stand_in = self

        def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
            name = str(kwargs.get(name_arg, args[0] if args else ""))
            if method == "describe_endpoint":
                stand_in.describe_calls += 1
            pattern = stand_in.fail.get(method)
            if pattern and re.search(pattern, name):
                raise ValidationError(message=f"injected: {method} failed for {name}")
            return original(backend, *args, **kwargs)

        return wrapper


# --- running an execution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]

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
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(execution_input))["executionArn"]
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
