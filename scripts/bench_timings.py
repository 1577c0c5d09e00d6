"""Rerunnable timing benchmark: whole-app synth time and test-suite time on this machine.

Not a test: timings depend on the machine and its load, so they are measured and printed here
(aims: whole-app synth under 20 s, test suite under 120 s on a 2-core machine), never asserted.

    python scripts/bench_timings.py            # in-process synth x3, CLI synth x1, test suite serial and -n 2
    python scripts/bench_timings.py --no-tests # synth only
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], *, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="in-process synth repetitions")
    parser.add_argument("--no-tests", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ)
    py = sys.executable
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as out:
        # A fresh interpreter each time: the cost a user pays for `python app.py` (jsii start-up included).
        synth = [py, "-c", f"import app; app.build_app(outdir={out!r}).synth()"]
        times = [_run(synth, env=env) for _ in range(args.repeat)]
        rows.append((f"whole app, python app.py (median of {args.repeat})", statistics.median(times)))
        rows.append(
            ("whole app, npx cdk synth -q", _run(["npx", "--no-install", "cdk", "synth", "-q", "-o", out], env=env))
        )
    if not args.no_tests:
        suite = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        rows.append(("test suite, pytest (serial)", _run(suite, env=env)))
        rows.append(
            (
                "test suite, pytest -n 2 --dist loadgroup (scripts/test)",
                _run([*suite, "-n", "2", "--dist", "loadgroup"], env=env),
            )
        )
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    for name, seconds in rows:
        print(f"{name:<50} {seconds:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
