#!/usr/bin/env python3
"""Mutation score of the core modules, each against only the fast tests meant to guard it.

Uses cosmic-ray (pinned in requirements-dev.txt). It mutates the file on disk and runs a test command per
mutant, so every module gets its own scratch copy of the project under ``build/mutation/<module>/``: the
checkout is never touched, and modules can run side by side (``--jobs``). mutmut 3 was the other candidate;
it skips ``@property`` methods, decorated functions and module constants, which is where much of this
project's logic lives (``MemoryPlan.fits``, ``USABLE_MEMORY_FRACTION``).

Operators that swap arithmetic for bitwise or shift operators are left out: on floats they only raise a
TypeError, which any test notices, so they would pad the score without testing anything. Mutants inside
type annotations are left out too (``float | None`` -> ``float + None``): under ``from __future__ import
annotations`` Python never evaluates them, so no test could tell them apart. The survivors that remain and
are equivalent for another reason are listed in ``EQUIVALENT`` below and in docs/testing.md.

    python scripts/mutation.py                         # every module, then the overall score
    python scripts/mutation.py catalog/fit.py          # some modules only
    python scripts/mutation.py --survivors catalog/fit.py   # also print each surviving mutant's diff

A rerun continues an unfinished session when neither the module nor its tests changed. Not part of CI:
the score is a benchmark, not a gate (docs/testing.md, with the dated scores).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
BIN = Path(sys.executable).parent
# Plugins the guarded tests do not need; loading them costs more than most tests take.
PYTEST = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:xdist"]
EXCLUDED_OPERATORS = [r"core/ReplaceBinaryOperator_.*_(BitAnd|BitOr|BitXor|LShift|RShift)$"]


@dataclass(frozen=True)
class Target:
    module: str  # the file to mutate
    tests: tuple[str, ...]  # the fast test files that guard it
    select: str = ""  # a pytest -k expression, where only part of a slow (synthesizing) file guards the module


# Survivors read and judged equivalent: no input the module accepts tells them apart from the original. The
# count is how many of a module's surviving mutants each entry covers; `line()` reports them beside the score.
EQUIVALENT: dict[str, tuple[tuple[int, str], ...]] = {
    "benchmark/analysis/cost.py": (
        (2, "`==` -> `is` on instance names: both sides are the catalog entry's own str object"),
        (2, "`tokens_per_s > 0` -> `>= 0` after `tokens_per_s and`: zero is already excluded"),
        (1, "`err.issues[0]` -> `[-1]`: get_price raises with exactly one issue"),
    ),
    "benchmark/analysis/recommend.py": (
        (2, "`==` -> `is` on the model size (interned str) and the concurrency (small int)"),
        (2, "`(tokens_per_s or 0.0) > 0` -> `or -1.0` / `!= 0`: tokens/s is None or >= 0, both reject None and 0"),
    ),
    "benchmark/clients/protocol.py": ((1, "`obj[0]` -> `obj[-1]` on a list just checked to hold exactly one element"),),
    "benchmark/measure/percentiles.py": (
        (2, "`round(.., 9)` -> 8 or 10 digits in min_samples: only float noise below 1e-8 differs"),
        (1, "`max(1, ..)` -> `max(0, ..)`: ceil(1 / (1 - q)) is at least 1 for q in [0, 1)"),
    ),
    "benchmark/wire/sse.py": (
        (1, "`_last_cr = True` at start: a leading LF it would swallow is a blank line that dispatches nothing"),
        (3, "`start < length` -> `<=`, `!=`, `is not`: start never passes length, and at length the loop breaks"),
        (2, "`nxt < length` -> `!=`, `nxt == length` -> `>=`: nxt never passes length"),
        (1, "`buffer[nxt] == '\\n'` -> `is`: one-character strings are cached objects"),
    ),
}


def equivalent(module: str) -> int:
    return sum(n for n, _ in EQUIVALENT.get(module, ()))


SETTINGS_TESTS = ("tests/test_config_validation.py", "tests/test_deployment_limits.py", "tests/test_catalog.py")
TARGETS = (
    Target("benchmark/measure/metrics.py", ("tests/benchmark/test_metrics.py",)),
    Target("benchmark/measure/percentiles.py", ("tests/benchmark/test_metrics.py",)),
    Target("benchmark/analysis/cost.py", ("tests/benchmark/test_cost.py",)),
    Target("benchmark/analysis/recommend.py", ("tests/benchmark/test_recommend.py",)),
    Target("catalog/fit.py", ("tests/test_catalog.py", "tests/test_config_validation.py")),
    Target("catalog/deployment.py", SETTINGS_TESTS),
    Target("catalog/deployment_checks.py", SETTINGS_TESTS),  # DeploymentConfig's checks, once split out
    Target(
        "benchmark/clients/protocol.py",
        ("tests/benchmark/test_protocol.py", "tests/benchmark/test_real_streams.py", "tests/benchmark/test_clients.py"),
    ),
    Target("benchmark/wire/sse.py", ("tests/benchmark/test_sse.py",)),
    # The policy builders are only visible in synthesized templates: each mutant costs a synth.
    Target(
        "constructs/llama_constructs/foundation/weights_bucket.py",
        ("tests/test_foundation.py",),
        "weights or prefix or model_data",
    ),
    Target(
        "constructs/llama_constructs/endpoint/execution_role.py",
        ("tests/iam/test_execution_role_props.py", "tests/test_endpoint_constructs.py"),
        "(execution_role_statements or no_broad_permissions) and (latency-7b or cost-70b) or nag_names"
        " or execution_role_props",
    ),
)


@dataclass(frozen=True)
class Score:
    module: str
    killed: int
    survived: int
    skipped: int
    seconds: float
    survivors: str = ""  # cr-report's diffs, when asked for

    @property
    def total(self) -> int:
        return self.killed + self.survived

    def line(self, name: str | None = None) -> str:
        pct = f"{100.0 * self.killed / self.total:5.1f} %" if self.total else "  n/a  "
        same = equivalent(self.module) if name is None else 0
        judged = f", {same} of the survivors equivalent" if same else ""
        return (
            f"{name or self.module:32} {self.killed:5d}/{self.total:<5d} killed {pct}  {self.seconds:6.0f} s"
            f"  ({self.skipped} filtered out{judged})"
        )


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) of every annotation, as (line, column), in a module that never evaluates them."""
    tree = ast.parse(source)
    postponed = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    if not postponed:
        return []
    notes: list[ast.expr | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            every = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x is not None)]
            notes += [arg.annotation for arg in every]
            notes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
    return [
        ((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in notes if n is not None
    ]


def skip_annotation_mutants(work: Path, module: str) -> int:
    """Mark the session's mutants inside never-evaluated annotations as skipped; how many there were."""
    from cosmic_ray.work_db import WorkDB, use_db  # type: ignore[import-untyped]  # noqa: PLC0415
    from cosmic_ray.work_item import WorkerOutcome, WorkResult  # type: ignore[import-untyped]  # noqa: PLC0415

    spans = annotation_spans((work / module).read_text())
    skipped = 0
    with use_db(str(work / "session.sqlite"), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            starts = [tuple(m.start_pos) for m in item.mutations]
            if starts and all(any(lo <= s < hi for lo, hi in spans) for s in starts):
                db.set_result(item.job_id, WorkResult(output="in an annotation", worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    return skipped


def tests_of(target: Target) -> list[str]:
    """The target's test files that exist in this checkout (another branch may not have them yet)."""
    return [t for t in target.tests if (ROOT / t).is_file()]


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [f for f in listed if (ROOT / f).is_file() and not f.startswith(("build/", "node_modules", ".venv"))]


def prepare(target: Target) -> tuple[Path, bool]:
    """Refresh the module's scratch copy; True when an earlier session there is still valid."""
    work = WORK / target.module.replace("/", "__").removesuffix(".py")
    digest = hashlib.sha256()
    for name in _project_files():
        data = (ROOT / name).read_bytes()
        digest.update(name.encode() + b"\0" + data)
        destination = work / name
        if not destination.exists() or destination.read_bytes() != data:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination)
    if not (work / "node_modules").exists() and (ROOT / "node_modules").exists():
        (work / "node_modules").symlink_to(ROOT / "node_modules")
    stamp, fingerprint = work / "fingerprint", digest.hexdigest()
    reusable = stamp.exists() and stamp.read_text() == fingerprint and (work / "session.sqlite").exists()
    stamp.write_text(fingerprint)
    return work, reusable


def pytest_command(target: Target) -> list[str]:
    select = ["-k", target.select] if target.select else []
    return [sys.executable, "-m", "pytest", *PYTEST, *select, *tests_of(target)]


def _config(target: Target, timeout_s: float) -> str:
    command = shlex.join(pytest_command(target))
    return "\n".join(
        [
            "[cosmic-ray]",
            f"module-path = {json.dumps(target.module)}",
            f"timeout = {timeout_s:.0f}",
            "excluded-modules = []",
            f"test-command = {json.dumps(command)}",
            "",
            "[cosmic-ray.distributor]",
            'name = "local"',
            "",
            "[cosmic-ray.filters.operators-filter]",
            f"exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}",
            "",
        ]
    )


def _cr(work: Path, *args: str) -> str:
    tool = args[0] if args[0].startswith("cr-") else "cosmic-ray"
    rest = args[1:] if tool != "cosmic-ray" else args
    out = subprocess.run([str(BIN / tool), *rest], cwd=work, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(rest)} failed in {work}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return out.stdout


def baseline_seconds(target: Target, work: Path) -> float:
    """Run the tests once unmutated: they must pass, and their time sets the per-mutant timeout."""
    start = time.monotonic()
    out = subprocess.run(pytest_command(target), cwd=work, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"tests fail without any mutation in {work}:\n{out.stdout[-3000:]}")
    return time.monotonic() - start


def count(work: Path) -> tuple[int, int, int]:
    """(killed, survived, skipped) from the session; a timeout or crash of the mutant counts as killed."""
    killed = survived = skipped = 0
    for line in _cr(work, "dump", "session.sqlite").splitlines():
        _item, result = json.loads(line)
        if not result:
            continue
        if result["worker_outcome"] == "skipped":
            skipped += 1
        elif result["test_outcome"] == "survived":
            survived += 1
        else:
            killed += 1
    return killed, survived, skipped


def run(target: Target, *, survivors: bool) -> Score:
    start = time.monotonic()
    work, reusable = prepare(target)
    if not reusable:
        (work / "session.sqlite").unlink(missing_ok=True)
        timeout_s = max(30.0, 10 * baseline_seconds(target, work))
        (work / "cosmic-ray.toml").write_text(_config(target, timeout_s))
        _cr(work, "init", "cosmic-ray.toml", "session.sqlite")
        _cr(work, "cr-filter-operators", "session.sqlite", "cosmic-ray.toml")
        skip_annotation_mutants(work, target.module)
    _cr(work, "exec", "cosmic-ray.toml", "session.sqlite")
    killed, survived, skipped = count(work)
    diffs = _cr(work, "cr-report", "--show-diff", "--surviving-only", "session.sqlite") if survivors else ""
    return Score(target.module, killed, survived, skipped, time.monotonic() - start, diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: all of them)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="modules mutated side by side")
    parser.add_argument("--fresh", action="store_true", help="discard earlier sessions and start over")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    args = parser.parse_args(argv)
    known = {t.module: t for t in TARGETS}
    unknown = [m for m in args.modules if m not in known]
    if unknown:
        parser.error(f"modules={unknown}: must be among {', '.join(known)}")
    chosen = [known[m] for m in args.modules] if args.modules else list(TARGETS)
    for target in [t for t in chosen if not (ROOT / t.module).is_file()]:
        print(f"{target.module:32} skipped: no such module in this checkout")
    for target in [t for t in chosen if not tests_of(t)]:
        print(f"{target.module:32} skipped: none of {', '.join(target.tests)} exists")
    chosen = [t for t in chosen if tests_of(t) and (ROOT / t.module).is_file()]
    if args.fresh:
        for target in chosen:
            shutil.rmtree(WORK / target.module.replace("/", "__").removesuffix(".py"), ignore_errors=True)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run, t, survivors=args.survivors) for t in chosen]
        scores = []
        failed = 0
        for target, future in zip(chosen, futures, strict=True):
            try:
                scores.append(future.result())
            except RuntimeError as err:  # this module's tests fail unmutated, or cosmic-ray failed: go on
                failed += 1
                print(f"{target.module:32} not measured: {err}", flush=True)
                continue
            print(scores[-1].survivors + scores[-1].line(), flush=True)
    killed, survived, skipped = (sum(getattr(s, k) for s in scores) for k in ("killed", "survived", "skipped"))
    total = Score("", killed, survived, skipped, time.monotonic() - start)
    print(total.line("overall"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
