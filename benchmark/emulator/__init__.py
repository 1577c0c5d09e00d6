"""A local stand-in for TGI, an OpenAI-compatible server and the SageMaker runtime, with ground truth.

Used by the tests (real sockets, every client) and by ``scripts/bench_accuracy.py`` (how far the
measured latencies are from what the server actually scheduled).
"""

from benchmark.emulator.config import EmulatorConfig, FaultKind, FaultRule, LatencyModel
from benchmark.emulator.engine import RequestTruth
from benchmark.emulator.server import (
    EmulatorServer,
    configure,
    fetch_stats,
    fetch_truth,
    reset,
    running_emulator,
    serve,
)

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "FaultKind",
    "FaultRule",
    "LatencyModel",
    "RequestTruth",
    "configure",
    "fetch_stats",
    "fetch_truth",
    "reset",
    "running_emulator",
    "serve",
]
