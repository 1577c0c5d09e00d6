"""Load a Lambda handler module from ``lambda/<name>/handler.py`` (each is a top-level module named ``handler``),
and give the load-test handler the environment its function has in the stack, pointed at local stand-ins."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambda"


@cache
def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_handler", LAMBDA_DIR / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_loadtest_env(monkeypatch: pytest.MonkeyPatch, *, region: str, bucket: str, runtime_url: str) -> None:
    """Fake credentials for moto, the results bucket, and the SageMaker runtime pointed at the emulator."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "RESULTS_BUCKET": bucket,
        "RESULTS_PREFIX": "runs/",
        "METRICS_NAMESPACE": "LlamaBenchmark",
        "BENCHMARK_RUNTIME_ENDPOINT_URL": runtime_url,
        "UTILIZATION_SETTLE_S": "0",
    }.items():
        monkeypatch.setenv(name, value)
