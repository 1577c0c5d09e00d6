"""Results records: JSON round trip, local and S3 stores, resume after a crash, external imports."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmark.analysis.collect import collect_results
from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.external import import_file
from benchmark.analysis.results import JsonlResultsStore, LevelResult, ResultsFileError, S3ResultsStore, open_store
from benchmark.clients import ClientSpec
from benchmark.measure.load import LoadSpec
from benchmark.measure.loadgen import LevelRun
from benchmark.measure.records import RequestRecord
from benchmark.measure.runner import MatrixPlan, run_matrix, run_one_level
from benchmark.serialize import dumps, from_data

CONFIGS = [
    BenchmarkConfiguration(model="7b", quantization="gptq", instance_type="ml.g5.2xlarge"),
    BenchmarkConfiguration(model="7b", instance_type="ml.g5.12xlarge"),
]


class KilledError(Exception):
    """The process dying mid-matrix (raised instead of the next level's measurement)."""


def level(concurrency: int) -> LoadSpec:
    return LoadSpec(concurrency=concurrency, duration_s=1.0, max_new_tokens=10)


class FakeLoad:
    """Stands in for the level runner's measure_level: each user finishes one 10-token request per second."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.calls: list[int] = []
        self.crash_after = crash_after

    def __call__(self, spec: LoadSpec, clients: Any, process: Any) -> LevelRun:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KilledError("killed after level 2")
        self.calls.append(spec.concurrency)
        records = [
            RequestRecord(user=u, start=float(t), end=t + 1.0, generated_tokens=10, first_token_at=t + 0.1)
            for u in range(spec.concurrency)
            for t in range(4)
        ]
        return LevelRun(spec, 0.0, 4.0, records)


UNUSED = ClientSpec("tgi-http", "http://unused.invalid")  # FakeLoad builds no client


@contextlib.contextmanager
def fake_target(configuration: BenchmarkConfiguration) -> Iterator[ClientSpec]:
    yield UNUSED


def test_one_level_is_measured_priced_and_written(tmp_path: Path) -> None:
    store = JsonlResultsStore(tmp_path / "r.jsonl")
    result = run_one_level(CONFIGS[0], level(5), UNUSED, target="fake", store=store, measure=FakeLoad()).result
    assert result.metrics.tokens_per_s == pytest.approx(5 * 4 * 10 / 4.0)
    assert result.metrics.ms_per_token.median == pytest.approx((1000 - 100) / 9)  # (e2e - ttft) / (n - 1)
    assert result.cost is not None and result.cost.usd_per_hour == 1.515
    assert result.load["concurrency"] == 5 and result.load["max_new_tokens"] == 10 and result.load["target"] == "fake"
    assert store.load() == [result]
    line = (tmp_path / "r.jsonl").read_text()
    assert line.endswith("\n") and json.loads(line)["configuration_key"] == CONFIGS[0].key
    assert from_data(LevelResult, json.loads(line)) == result


def test_rerun_resumes_after_a_kill_and_keeps_earlier_records(tmp_path: Path) -> None:
    store = JsonlResultsStore(tmp_path / "results.jsonl")
    plan = MatrixPlan(CONFIGS, [level(1), level(5)])
    crashing = FakeLoad(crash_after=2)
    with pytest.raises(KilledError):
        run_matrix(plan, fake_target, store, target="", measure=crashing)
    before = (tmp_path / "results.jsonl").read_text()
    assert [r.level_key for r in store.load()] == [(CONFIGS[0].key, 1), (CONFIGS[0].key, 5)]

    resumed = FakeLoad()
    new = run_matrix(plan, fake_target, store, target="", measure=resumed)
    assert resumed.calls == [1, 5]  # only the second configuration's levels ran
    assert [r.level_key for r in new] == [(CONFIGS[1].key, 1), (CONFIGS[1].key, 5)]
    assert (tmp_path / "results.jsonl").read_text().startswith(before)
    assert len(store.load()) == 4

    again = FakeLoad()
    assert run_matrix(plan, fake_target, store, target="", measure=again) == []
    assert again.calls == []


def test_partial_last_line_from_a_killed_write_is_dropped_and_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store = JsonlResultsStore(path)
    first = run_one_level(CONFIGS[0], level(1), UNUSED, target="", store=store, measure=FakeLoad()).result
    with path.open("a") as handle:
        handle.write('{"schema": "llama2-benchmark/level-result/1", "configur')
    assert store.load() == [first]
    second = run_one_level(CONFIGS[0], level(5), UNUSED, target="", store=store, measure=FakeLoad()).result
    assert store.load() == [first, second]
    assert len(path.read_text().splitlines()) == 2


def test_malformed_line_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store = JsonlResultsStore(path)
    run_one_level(CONFIGS[0], level(1), UNUSED, target="", store=store, measure=FakeLoad())
    record = json.loads(path.read_text())
    record["configuration"]["instance_type"] = "ml.p4d.12xlarge"
    with path.open("a") as handle:
        handle.write("not json\n")
    with pytest.raises(ResultsFileError, match=r"r\.jsonl:2: json"):
        store.load()
    path.write_text(path.read_text().splitlines()[0] + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ResultsFileError) as err:
        store.load()
    assert "r.jsonl:2: configuration.instance_type='ml.p4d.12xlarge'" in str(err.value)


@mock_aws
def test_s3_store_writes_one_object_per_level_and_reads_them_back() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="results")
    store = open_store("s3://results/runs/2026-11", s3_client=s3)
    assert isinstance(store, S3ResultsStore)
    plan = MatrixPlan(CONFIGS, [level(1), level(5)])
    with pytest.raises(KilledError):
        run_matrix(plan, fake_target, store, target="", measure=FakeLoad(crash_after=3))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="results", Prefix="runs/2026-11/")["Contents"]]
    assert len(keys) == 3 and all(k.endswith(".json") for k in keys)
    assert "runs/2026-11/7b%2Fgptq%2Fml.g5.2xlarge%2Ftgi-3.3.6%2Fus-east-1/concurrency-0001.json" in keys
    expected = sorted([(CONFIGS[0].key, 1), (CONFIGS[0].key, 5), (CONFIGS[1].key, 1)])
    assert [r.level_key for r in store.load()] == expected  # read back in key order
    assert collect_results(["s3://results/runs/2026-11"], s3_client=s3) == store.load()

    resumed = FakeLoad()
    run_matrix(plan, fake_target, store, target="", measure=resumed)
    assert resumed.calls == [5]
    assert len(store.load()) == 4


@mock_aws
def test_s3_object_with_bad_record_is_named() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="results")
    s3.put_object(Bucket="results", Key="p/x/concurrency-0001.json", Body=b'{"schema": "other"}')
    with pytest.raises(ResultsFileError, match=r"s3://results/p/x/concurrency-0001.json:1: schema"):
        open_store("s3://results/p", s3_client=s3).load()


def test_utilization_can_be_added_later(tmp_path: Path) -> None:
    result = run_one_level(CONFIGS[0], level(1), UNUSED, target="", store=None, measure=FakeLoad()).result
    filled = result.with_utilization({"gpu": 93.5, "gpu_memory": 88.0})
    assert from_data(LevelResult, json.loads(dumps(filled))).utilization == {"gpu": 93.5, "gpu_memory": 88.0}


# --- results from other tools --------------------------------------------------------------------------------

CSV_HEADER = "model,quantization,instance,concurrency,ms_per_token_median,tokens_per_s,region,usd_per_hour,error_rate\n"


def test_external_csv_is_imported_and_priced(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text(
        CSV_HEADER
        + "Llama 2 13B,gptq,g5.2xlarge,5,56.2,71.7,us-west-2,,0.01\n7b,fp16,ml.g5.12xlarge,1,16.8,61.5,,8.0,\n"
    )
    first, second = import_file(path)
    assert first.configuration.key == "13b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-west-2"
    assert first.cost is not None and first.cost.usd_per_hour == 1.515  # catalog, us-west-2
    assert first.cost.usd_per_1m_tokens == pytest.approx(1e6 / 71.7 / 3600 * 1.515)
    assert first.metrics.error_rate == 0.01 and first.source == "other.csv"
    assert second.cost is not None and second.cost.usd_per_hour == 8.0  # the file's own price
    assert second.headroom is not None
    assert second.headroom.efficiency == pytest.approx(second.headroom.bound_ms_per_token / 16.8)


def test_external_jsonl_is_recognised_by_collect(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    row = {
        "model": "70b",
        "quantization": "gptq",
        "instance": "ml.g5.12xlarge",
        "concurrency": 5,
        "ms_per_token_median": 138.3,
        "tokens_per_s": 33.3,
        "source": "llmperf",
    }
    path.write_text(json.dumps(row) + "\n")
    (result,) = collect_results([str(path)], price_overrides={"ml.g5.12xlarge": 10.0})
    assert result.source == "llmperf"
    assert result.cost is not None and result.cost.usd_per_hour == 10.0


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("7b,fp16,ml.p4d.12xlarge,1,16.8,61.5,,,", "other.csv:3: instance='ml.p4d.12xlarge'"),
        ("7b,fp16,ml.g5.2xlarge,0,16.8,61.5,,,", "other.csv:3: concurrency='0'"),
        ("7b,fp16,ml.g5.2xlarge,1.5,16.8,61.5,,,", "other.csv:3: concurrency='1.5'"),
        ("7b,fp16,ml.g5.2xlarge,1,fast,61.5,,,", "other.csv:3: ms_per_token_median='fast'"),
        ("7b,fp16,ml.g5.2xlarge,1,16.8,,,,", "other.csv:3: tokens_per_s=''"),
        ("7b,fp16,ml.g5.2xlarge,1,16.8,61.5,,,2", "other.csv:3: error_rate='2'"),
        ("7b,fp16,ml.g5.2xlarge,1,16.8,61.5,,-1,", "other.csv:3: usd_per_hour='-1'"),
        ("9b,fp16,ml.g5.2xlarge,1,16.8,61.5,,,", "other.csv:3: model='9b'"),
        ("7b,fp16,ml.g5.4xlarge,1,16.8,61.5,eu-west-1,,", "other.csv:3: region='eu-west-1'"),
    ],
)
def test_malformed_external_row_names_file_line_and_field(tmp_path: Path, row: str, expected: str) -> None:
    path = tmp_path / "other.csv"
    path.write_text(CSV_HEADER + "7b,fp16,ml.g5.2xlarge,1,16.8,61.5,,,\n" + row + "\n")
    with pytest.raises(ResultsFileError) as err:
        import_file(path)
    assert expected in str(err.value)


def test_external_csv_without_required_column(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("model,quantization,instance,concurrency,tokens_per_s\n7b,fp16,ml.g5.2xlarge,1,10\n")
    with pytest.raises(ResultsFileError, match=r"other.csv:1: ms_per_token_median"):
        import_file(path)


def test_missing_results_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match=r"nope\.jsonl"):
        collect_results([str(tmp_path / "nope.jsonl")])


def test_a_price_override_applies_at_import_and_wins_over_the_file(tmp_path: Path) -> None:
    # us-west-2 has no catalog price for ml.g5.48xlarge: without an override the import stops and says how
    path = tmp_path / "other.csv"
    path.write_text(
        CSV_HEADER + "7b,fp16,ml.g5.48xlarge,1,17.9,56.5,us-west-2,,\n7b,gptq,g5.2xlarge,5,34.2,120.0,,9.0,\n"
    )
    with pytest.raises(ResultsFileError, match=r"other\.csv:2: region='us-west-2'.*--price-override ml\.g5\.48xlarge="):
        import_file(path)
    g5_48, g5_2 = import_file(path, price_overrides={"ml.g5.48xlarge": 20.36, "g5.2xlarge": 1.0})  # short name too
    assert g5_48.cost is not None and g5_48.cost.usd_per_hour == 20.36
    assert g5_48.cost.usd_per_1m_tokens == pytest.approx(1e6 / 56.5 / 3600 * 20.36)  # $100.10
    assert g5_2.cost is not None and g5_2.cost.usd_per_hour == 1.0  # the override beats the file's $9/h
    (via_collect, _) = collect_results([str(path)], price_overrides={"ml.g5.48xlarge": 20.36})
    assert via_collect.cost is not None and via_collect.cost.usd_per_hour == 20.36


def test_imported_rows_say_their_figures_are_the_source_tools_and_keep_it_through_json(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text(CSV_HEADER + "7b,fp16,ml.g5.12xlarge,1,16.8,61.5,,,\n")
    (imported,) = import_file(path)
    assert set(imported.definitions) == {"all figures"}
    assert from_data(LevelResult, json.loads(dumps(imported))) == imported
    old_record = json.loads(dumps(imported))
    del old_record["definitions"]  # written before the field existed
    assert from_data(LevelResult, old_record).definitions == {}
