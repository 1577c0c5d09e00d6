"""Post-deploy smoke test: ask each endpoint for a few tokens through the SageMaker runtime; fail if it does not.

The promotion pipeline runs this after each stage's deploy (``python -m benchmark.aws.smoke --region ...
--role-arn ... --endpoint-name ...``) in a CodeBuild project of the pipeline account. It assumes the stage's
smoke-test role, which may only call ``sagemaker:InvokeEndpoint`` on that stage's endpoints, and sends one
short TGI ``/generate`` request per endpoint. An error, a body that is not TGI's JSON, or an answer without
generated text exits non-zero, which fails the pipeline stage before the next one can be promoted.

Only boto3 and the standard library are imported, so the step needs nothing else installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PROMPT = "Reply with one short sentence: what is Amazon SageMaker?"
DEFAULT_MAX_NEW_TOKENS = 16
SESSION_NAME = "llama2-smoke-test"


class SmokeTestError(Exception):
    """The endpoint did not answer with generated text."""


@dataclass(frozen=True)
class SmokeResult:
    endpoint_name: str
    ok: bool
    detail: str  # the generated text when ok, else what went wrong
    elapsed_ms: float

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return f"{verdict:6} {self.endpoint_name} ({self.elapsed_ms:.0f} ms): {self.detail}"


def request_body(max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, prompt: str = PROMPT) -> bytes:
    """A TGI ``/generate`` request, greedy so a healthy model always produces the same few tokens."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    return json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "do_sample": False}}).encode()


def generated_text(body: bytes) -> str:
    """The text of a TGI answer (the container's ``/invocations`` returns a one-element list, ``/generate`` an
    object); raises ``SmokeTestError`` for anything else or for empty text."""
    try:
        answer: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SmokeTestError(f"answer is not JSON: {body[:200]!r} ({err})") from None
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if not isinstance(answer, dict):
        raise SmokeTestError(f"answer is not a TGI generation: {str(answer)[:200]}")
    if "error" in answer:
        raise SmokeTestError(f"the model answered with an error: {str(answer['error'])[:200]}")
    text = answer.get("generated_text")
    if not isinstance(text, str):
        raise SmokeTestError(f"answer has no generated_text: {str(answer)[:200]}")
    if not text.strip():
        raise SmokeTestError("the model generated no text")
    return text


def check_endpoint(
    client: Any, endpoint_name: str, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, prompt: str = PROMPT
) -> SmokeResult:
    """One InvokeEndpoint call; never raises for what the endpoint does, only reports."""
    start = time.perf_counter()
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=request_body(max_new_tokens, prompt),
        )
        text = generated_text(response["Body"].read())
    except ClientError as err:
        error = err.response.get("Error", {})
        detail = f"{error.get('Code', 'ClientError')}: {error.get('Message', err)}"
        return SmokeResult(endpoint_name, False, detail, _ms(start))
    except BotoCoreError as err:
        return SmokeResult(endpoint_name, False, f"{type(err).__name__}: {err}", _ms(start))
    except SmokeTestError as err:
        return SmokeResult(endpoint_name, False, str(err), _ms(start))
    return SmokeResult(endpoint_name, True, text.strip()[:200], _ms(start))


def runtime_client(
    region: str,
    *,
    role_arn: str | None = None,
    endpoint_url: str | None = None,
    session: boto3.Session | None = None,
    timeout_s: float = 90.0,
) -> Any:
    """A sagemaker-runtime client, as ``role_arn`` when given (the stage's smoke-test role in its own account)."""
    base = session or boto3.Session(region_name=region)
    if role_arn:
        creds = base.client("sts", region_name=region).assume_role(
            RoleArn=role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=900
        )["Credentials"]
        base = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
    # A few retries ride out a throttle or a 5xx blip right after deploy; a model that is down stays down.
    config = Config(retries={"mode": "standard", "total_max_attempts": 3}, read_timeout=timeout_s, connect_timeout=10)
    return base.client("sagemaker-runtime", region_name=region, endpoint_url=endpoint_url, config=config)


def run(client: Any, endpoint_names: Sequence[str], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> bool:
    """Check every endpoint (all of them, so one report shows every failure); True when all answered."""
    results = [check_endpoint(client, name, max_new_tokens=max_new_tokens) for name in endpoint_names]
    for result in results:
        print(result, flush=True)
    return all(r.ok for r in results)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.aws.smoke", description="Invoke each endpoint once; exit 1 unless all generate text."
    )
    parser.add_argument("--endpoint-name", action="append", required=True, help="repeat for each endpoint")
    parser.add_argument("--region", required=True)
    parser.add_argument("--role-arn", help="role to assume first (the stage's smoke-test role)")
    parser.add_argument("--endpoint-url", help="SageMaker runtime URL override (tests, the local emulator)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    args = parser.parse_args(argv)
    names = [n for n in args.endpoint_name if n]
    if not names:
        parser.error("--endpoint-name is empty (was the stack output resolved?)")
    args.endpoint_name = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        client = runtime_client(args.region, role_arn=args.role_arn, endpoint_url=args.endpoint_url)
    except (ClientError, BotoCoreError) as err:
        print(f"FAILED cannot assume {args.role_arn}: {err}", file=sys.stderr)
        return 1
    return 0 if run(client, args.endpoint_name, max_new_tokens=args.max_new_tokens) else 1


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    sys.exit(main())
