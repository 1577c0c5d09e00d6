"""Worker processes where there is no ``/dev/shm``, as in AWS Lambda: the OS, not a stand-in, says what fails.

Each test runs Python in a private mount namespace (``unshare``) where ``/dev/shm`` is an empty read-only
directory, so creating a POSIX semaphore (``SemLock``: every ``Queue``, ``Barrier``, ``Lock``) fails in the
kernel as it does in Lambda. As root, ``unshare --mount``; otherwise an unprivileged user namespace
(``unshare --user --map-root-user --mount``), where the kernel allows one. Where neither is permitted the tests
skip and say so. The first test checks the premise (a ``Queue`` really fails there) before the second relies on it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.emulator import EmulatorConfig, EmulatorServer, LatencyModel

ROOT = Path(__file__).resolve().parents[2]
# Mount an empty directory read-only over /dev/shm in a private mount namespace, then run the command.
_HIDE_SHM = 'mount --bind "$0" /dev/shm && mount -o remount,bind,ro /dev/shm && exec "$@"'
_NAMESPACES = (
    ("unshare", "--mount", "--propagation", "private"),
    ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"),
)


def run_without_shm(code: str, empty: Path, *, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with no usable /dev/shm; skips the test where no namespace can be made."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: cannot hide /dev/shm")
    refusals = []
    for namespace in _NAMESPACES:
        argv = [*namespace, "sh", "-c", _HIDE_SHM, str(empty), sys.executable, "-c", textwrap.dedent(code)]
        probe = subprocess.run([*namespace, "true"], check=False, capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            refusals.append(f"{' '.join(namespace)}: {probe.stderr.strip()}")
            continue
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    pytest.skip(f"no mount namespace permitted here ({'; '.join(refusals)}): cannot hide /dev/shm")


def test_without_dev_shm_queues_and_barriers_fail_but_pipes_work(tmp_path: Path) -> None:
    done = run_without_shm(
        """
        import json, multiprocessing
        context = multiprocessing.get_context("spawn")
        outcome = {}
        for name in ("Queue", "Barrier", "Lock"):
            try:
                getattr(context, name)(*((2,) if name == "Barrier" else ()))
                outcome[name] = "created"
            except OSError as err:
                outcome[name] = f"OSError {err.errno}"
        reader, writer = context.Pipe(duplex=False)
        writer.send("through")
        outcome["Pipe"] = reader.recv()
        print(json.dumps(outcome))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert all(outcome[name].startswith("OSError") for name in ("Queue", "Barrier", "Lock")), outcome
    assert outcome["Pipe"] == "through"


def test_a_level_runs_in_worker_processes_without_dev_shm(tmp_path: Path) -> None:
    latency = LatencyModel(prefill_base_ms=5, prefill_ms_per_token=0, tpot_base_ms=2, tpot_slope_ms=0, tokens=8)
    with EmulatorServer(EmulatorConfig(latency=latency)) as server:
        done = run_without_shm(
            f"""
            import json, multiprocessing
            from benchmark.clients import ClientSpec
            from benchmark.measure.load import LoadSpec
            from benchmark.measure.runner import ProcessOptions, measure_level
            try:
                multiprocessing.get_context("spawn").Queue()
                queue = "created"
            except OSError:
                queue = "refused"
            spec = LoadSpec(concurrency=6, duration_s=None, max_requests=18, warmup_requests=6,
                            max_new_tokens=8, timeout_s=10, ramp_up_s=0.3)
            run = measure_level(spec, ClientSpec("tgi-http", {server.base_url!r}), ProcessOptions(workers=3))
            print(json.dumps({{
                "queue": queue,
                "records": len(run.records),
                "ok": sum(r.ok for r in run.records),
                "users": sorted({{r.user for r in run.records}}),
                "per_worker": {{w: sum(r.user % 3 == w for r in run.records) for w in range(3)}},
                "ids": sorted(r.request_id or "" for r in run.records),
            }}))
            """,
            tmp_path,
        )
        truths = server.truth()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["queue"] == "refused"  # the premise: this process really has no usable /dev/shm
    assert out["records"] == out["ok"] == 24
    # What the workers guarantee: each of the three ran its own budget (6 of the 18 requests and 2 of the 6
    # warm-ups: workers.share), and its users are numbered across the level (worker w's user u is u * 3 + w), so
    # they are distinct between workers and within 0..5. Not that every user ran: within a worker the budget is
    # shared, and a user that ramps up late may find it spent.
    per_worker = {w: [u for u in out["users"] if u % 3 == w] for w in range(3)}
    assert set(out["users"]) <= set(range(6)) and all(per_worker.values()), out["users"]
    assert out["per_worker"] == {"0": 8, "1": 8, "2": 8}
    assert out["ids"] == sorted(t.request_id for t in truths)  # every request reached the server once
