"""The dry-run plan against hand-computed numbers for the 2023 matrix.

Per configuration: ours = 20 min deploy + 4 x 90 s + 2 min teardown = 28 min; 2023 = 4 x (20 + 1.5 + 2) = 94 min.
15 configurations: 7.0 vs 23.5 endpoint-hours. Sum of us-east-1 prices: 3 x 1.515 + 4 x 7.09 + 4 x 20.36 +
4 x 37.688 = 265.097 $/h, so $123.71 vs $415.32.
"""

from __future__ import annotations

import pytest

from benchmark.analysis.plan import format_plan, main, make_plan
from benchmark.matrix import load_matrix


def test_2023_plan_numbers() -> None:
    plan = make_plan(load_matrix("2023"))
    assert plan.ours.deployments == 15 and plan.method_2023.deployments == 60
    assert plan.ours.endpoint_hours == pytest.approx(7.0)
    assert plan.method_2023.endpoint_hours == pytest.approx(23.5)
    assert plan.ours.usd == pytest.approx(265.097 * 28 / 60)
    assert plan.method_2023.usd == pytest.approx(265.097 * 94 / 60)
    assert plan.ours.wall_clock_hours == pytest.approx(5 * 28 / 60)  # 15 configurations, 3 at a time
    assert "15" in format_plan(plan) and "60" in format_plan(plan)


def test_cli_overrides_and_refuses_unpriced_region(capsys) -> None:
    assert main(["2023", "--deploy-minutes", "10", "--json"]) == 0
    assert '"deployments": 15' in capsys.readouterr().out
    assert main(["2023", "--region", "us-west-2"]) == 2  # no catalog price for ml.g5.48xlarge there
    assert "ml.g5.48xlarge" in capsys.readouterr().err


def test_benchmark_cli_plan_subcommand(capsys) -> None:
    from benchmark.cli import main as cli_main  # noqa: PLC0415

    assert cli_main(["plan", "2023", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"deployments": 15' in out and '"deployments": 60' in out
    assert cli_main(["plan", "2023", "--deploy-minutes", "-1"]) == 2
    assert "--deploy-minutes" in capsys.readouterr().err
