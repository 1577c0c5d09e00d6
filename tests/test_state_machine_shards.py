"""A fanned-out level in moto's Step Functions interpreter (tests/sfn_local.py), against an independent ground truth.

The deployed definition runs one configuration with one level of 8 virtual users, fanned out over 1, 2 and 4
shards: the shard Map invokes the real load-test handler once per shard (each with its share of the users, all
from the common start in the event), every shard writes its raw records to S3 (moto), and the merge step writes
the level's record. The SageMaker runtime is ``scripts/truth_server.py``, which shares no code with the benchmark
and logs when each request arrived and when each token was written; the merged level's TTFT and ms/token medians
and its tokens/s must agree with the figures ``scripts/bench_accuracy.py`` computes from that log for the same
requests within the accuracy goals (2 %, 1 %, 2 %). Each shard's client checks itself as an unsharded level's does
(its CPU against the 1,024 MB function's vCPU share), and the merged level carries every shard's verdict. When a
shard fails, the level fails, the endpoint is torn down and no level record is written; what a failed level leaves
behind is the surviving shards' raw records under ``shards/`` (here exactly one: see the test).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmark.analysis.results import LevelResult
from benchmark.aws.contract import level_item
from benchmark.aws.levels import read_event
from benchmark.aws.shards import ShardRecords, merge_runs, realtime_offset, shard_key
from benchmark.measure.loadgen import LevelRun
from benchmark.serialize import from_data
from tests.benchmark_fixtures import Built, build, local_definition
from tests.lambda_handlers import load_handler, set_loadtest_env
from tests.sfn_local import (
    Execution,
    LocalLambdas,
    SageMakerStandIn,
    pascal_case_service_errors,
    run_execution,
    zero_waits,
)

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "benchmark-results"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:benchmark-notifications"
LOADTEST = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:loadtest"
AGGREGATE = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aggregate"
CONFIGURATION = "7b-gptq-g5-2xlarge"
USERS = 8
LEAD_S = 1.0  # the shards' lead before their common start (Lambda cold starts take none here)
# The load: small enough for a 2-core machine; the truth server answers 50 tokens at about 21 ms each.
LOAD = {
    "streaming": True,
    "duration_s": 4.0,
    "warmup_requests": USERS,
    "ramp_up_s": 0.4,
    "max_new_tokens": 50,
    "timeout_s": 30.0,
}
GOALS = {"ttft": 2.0, "ms_per_token": 1.0, "tokens_per_s": 2.0}  # per cent: the accuracy goals


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def accuracy() -> ModuleType:
    return _script("bench_accuracy")


@pytest.fixture(scope="module")
def truth(accuracy: ModuleType) -> Iterator[str]:
    process, url = accuracy.start_server()
    try:
        yield str(url)
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


def fanned_out(built: Built, shards: int) -> dict[str, Any]:
    """The deployed definition, one configuration, one level of USERS users over ``shards`` shards (0: not fanned
    out), the matrix's load shortened, waits 0 s and the shards' lead LEAD_S; nothing else changed."""
    out = zero_waits(local_definition(built, bucket=BUCKET, topic=TOPIC, loadtest=LOADTEST, aggregate=AGGREGATE))
    plan = out["States"]["Matrix-2023"]["Result"]
    plan["configurations"] = [c for c in plan["configurations"] if c["id"] == CONFIGURATION]
    plan["levels"] = [level_item(USERS, shards)]
    plan["load"] = dict(plan["load"], **LOAD)
    shard_map = _find(out, "ShardLevel")
    assert shard_map["ItemSelector"]["shard"]["lead_s"] > LEAD_S  # the deployed lead is longer
    shard_map["ItemSelector"]["shard"]["lead_s"] = LEAD_S
    return out


def _find(definition: dict[str, Any], name: str) -> dict[str, Any]:
    for state_name, state in definition["States"].items():
        if state_name == name:
            return state  # type: ignore[no-any-return]
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            try:
                return _find(processor, name)
            except KeyError:
                pass
    raise KeyError(name)


@dataclass
class Harness:
    sfn: Any
    s3: Any
    sagemaker: Any
    lambdas: LocalLambdas

    def run(self, definition: dict[str, Any], name: str) -> Execution:
        arn = self.sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
        )["stateMachineArn"]
        return run_execution(self.sfn, arn, {"matrix": "2023"}, timeout_s=170)

    def keys(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]

    def json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def leftovers(self) -> list[str]:
        return [e["EndpointName"] for e in self.sagemaker.list_endpoints()["Endpoints"]] + [
            m["ModelName"] for m in self.sagemaker.list_models()["Models"]
        ]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch, truth: str) -> Iterator[Harness]:
    set_loadtest_env(monkeypatch, region=REGION, bucket=BUCKET, runtime_url=truth)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")  # below two vCPUs: no worker processes
    SageMakerStandIn().install(monkeypatch)
    pascal_case_service_errors(monkeypatch)
    lambdas = LocalLambdas({LOADTEST: load_handler("loadtest").handler, AGGREGATE: load_handler("aggregate").handler})
    lambdas.install(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("sns", region_name=REGION).create_topic(Name="benchmark-notifications")
        sfn = boto3.client("stepfunctions", region_name=REGION)
        yield Harness(sfn, s3, boto3.client("sagemaker", region_name=REGION), lambdas)


def _err(measured: float, truth: float) -> float:
    return abs(measured - truth) / truth * 100


def shard_events(h: Harness) -> list[dict[str, Any]]:
    return [e for name, e in h.lambdas.calls if name == LOADTEST and e.get("shard")]


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_a_fanned_out_level_agrees_with_the_ground_truth(
    harness: Harness, built: Built, accuracy: ModuleType, truth: str, shards: int
) -> None:
    accuracy.call(truth, "/reset", "POST")
    execution = harness.run(fanned_out(built, shards), f"shards-{shards}")
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert [c["outcome"] for c in execution.output["configurations"]] == ["succeeded"]
    assert harness.leftovers() == []
    run_id = execution.output["run_id"]

    # Every shard got its share (differing by at most one) and one common start, from the Map's one timestamp.
    events = [read_event(e) for e in shard_events(harness)]
    assert sorted(e.shard.index for e in events if e.shard) == list(range(shards))
    shares = [e.load.concurrency for e in events]  # the level's LoadSpec: each shard takes its share in the handler
    assert set(shares) == {USERS}
    starts = {e.shard.start_epoch_s for e in events if e.shard}
    assert len(starts) == 1
    assert execution.entered().count("MergeShards") == 1 and "LoadTest" not in execution.entered()

    # The raw records each shard left, and the level's one record, merged from them.
    shard_keys = harness.keys(f"runs/{run_id}/shards/")
    assert len(shard_keys) == shards
    parts = [from_data(ShardRecords, harness.json(k)) for k in shard_keys]
    assert sorted(len({r.user for r in p.records}) for p in parts) == sorted(
        [USERS // shards + (1 if i < USERS % shards else 0) for i in range(shards)]
    )
    assert set().union(*({r.user for r in p.records} for p in parts)) == set(range(USERS))  # distinct, level-wide
    (level_key,) = harness.keys(f"runs/{run_id}/levels/")
    level = from_data(LevelResult, harness.json(level_key))
    assert level.concurrency == USERS and level.metrics.requests_failed == 0
    assert any("fanned out over" in note for note in level.notes)

    # Each shard's client measured itself (CPU against the 1,024 MB function's vCPU share, one event loop), and
    # the level carries each shard's verdict and the CPU figures of one of them.
    granted = 1024 / 1769  # vCPUs (Lambda developer guide: one per 1,769 MB)
    for part in parts:
        assert part.processes == 1 and part.usable_cpus == pytest.approx(granted)
        assert len(part.cpu_samples) >= 2 and part.client_cpu_share is not None
        # On the records' time base (seconds since the common start): the monitor stops after the last answer.
        assert part.cpu_samples[0][0] <= 0.0 < max(r.end for r in part.records) <= part.cpu_samples[-1][0]
        prefix = f"shard {part.index} of {part.count}: "
        assert [r for r in level.metrics.client_bound_reasons if r.startswith(prefix)] == [
            prefix + r for r in part.client_bound_reasons
        ]
    assert level.metrics.client_cpus == pytest.approx(granted) and level.metrics.client_cpu_share is not None

    # Truth, from the truth server's log alone, for the requests the merged level used: the records moved back
    # from the common start's time base to the clock the truth server stamps with (this machine's monotonic).
    event = events[0]
    run = merge_runs(event, parts)
    back = starts.pop() - realtime_offset()  # the shards ran in this process, as the harness's Lambdas
    perf_run = LevelRun(
        spec=run.spec,
        window_start=run.window_start + back,
        window_end=run.window_end + back,
        records=[_moved(r, back) for r in run.records],
    )
    truths = accuracy.call(truth, "/truth")
    requests, ttft, tpot, tokens_per_s, _, _ = accuracy.truth_figures(perf_run, truths)
    assert requests >= 2 * USERS
    m = level.metrics
    assert m.ttft_ms.median is not None and m.ms_per_token.median is not None and m.tokens_per_s is not None
    errors = {
        "ttft": _err(m.ttft_ms.median, ttft),
        "ms_per_token": _err(m.ms_per_token.median, tpot),
        "tokens_per_s": _err(m.tokens_per_s, tokens_per_s),
    }
    print(f"{shards} shard(s), {requests} requests: error % vs truth {errors}")  # shown with pytest -s
    within = all(errors[k] <= GOALS[k] for k in GOALS)
    # Issue 19's rule, never a silent error: the merged figures agree with truth, or the merged level says its
    # client may have bounded it. The harness runs every shard in this one process (threads, one interpreter lock)
    # on a shared 2-core machine, where a shard can read its sockets late; the truth server's log is what decides
    # that it did, and the level's verdict must then say so (coalesced first tokens, its own evidence).
    assert within or m.client_bound, (errors, m.ttft_ms.median, ttft, m.tokens_per_s, tokens_per_s, m.client_bound)
    if not within:
        warnings.warn(f"{shards} shard(s): client-bound on this machine, {m.client_bound_reasons}", stacklevel=1)


def _moved(record: Any, by: float) -> Any:
    return replace(
        record,
        start=record.start + by,
        end=record.end + by,
        first_token_at=None if record.first_token_at is None else record.first_token_at + by,
        token_times=[t + by for t in record.token_times],
    )


def test_a_failed_shard_fails_the_level_and_tears_the_endpoint_down(harness: Harness, built: Built) -> None:
    """Shard 1's Lambda crashes before it runs; shard 0 runs on. What is left behind is shard 0's raw records under
    ``shards/`` and nothing else: no level record, no endpoint, config or model. Exactly one object, not "at most
    one": here the SageMaker runtime is the truth server, which stays up after the stand-in endpoint is deleted,
    so shard 0 always finishes its share and writes its records (on AWS it may fail fast instead and write none)."""

    def crash(arn: str, event: dict[str, Any]) -> BaseException | None:
        shard = event.get("shard") or {}
        return RuntimeError("injected: the shard's Lambda crashed") if shard.get("index") == 1 else None

    harness.lambdas.crash = crash
    execution = harness.run(fanned_out(built, 2), "shard-fails")
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)  # the run goes on, and reports
    assert [c["outcome"] for c in execution.output["configurations"]] == ["failed"]
    assert harness.leftovers() == []  # torn down
    assert "MergeShards" not in execution.entered() and "DeleteEndpoint" in execution.entered()
    run_id = execution.output["run_id"]
    # The other shard's Lambda is not stopped by the Map's failure (nor in AWS): it finishes its share on its own.
    deadline = time.monotonic() + 60
    while harness.lambdas.in_flight and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness.lambdas.in_flight == 0
    # Shard 0's raw records under shards/ (which no report reads), exactly, and no merged record (docstring).
    assert harness.keys(f"runs/{run_id}/levels/") == []
    level = read_event(shard_events(harness)[0])
    assert harness.keys(f"runs/{run_id}/shards/") == [shard_key("runs/", level, 0, 2)]
    (failure,) = harness.keys(f"runs/{run_id}/failures/")
    assert "injected: the shard's Lambda crashed" in harness.json(failure)["error"]["Cause"]
    report = harness.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/report/report.md")["Body"].read().decode()
    assert f"{CONFIGURATION} failed" in report
