"""The whole app passes the cdk-nag packs and cfn-lint, and every acknowledgment says why.

The app is synthesized once per session (conftest ``app_assembly``); small throwaway apps check how the
packs reach stacks inside a ``cdk.Stage``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cfnlint.api import lint

from stacks.compliance import NAG_PACKS, PACK_NAMES, apply_compliance, has_compliance

if TYPE_CHECKING:
    from tests.conftest import AppAssembly

ACK_METADATA = "aws:cdk:acknowledged-rules"
LINT_REGIONS = ["us-east-1", "us-west-2"]
_TRIVIAL = re.compile(r"^\W*(n/?a|ok|todo|tbd|fixme|suppress(ed)?|ignore(d)?|false positive|not needed|none)\W*$", re.I)
MIN_REASON_WORDS = 8
# The packs' rules, and CDK's built-in CloudFormation checks (on with @aws-cdk/core:validateAgainstDefaultRules).
KNOWN_RULE = re.compile(r"(AwsSolutions|NIST\.800\.53\.R5)-[A-Za-z0-9]+|^CloudFormation-Validate::[A-Z]\d+")


def _violations(report: dict[str, Any]) -> Iterator[str]:
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            where = [c.get("constructPath") for c in violation.get("violatingConstructs", [])]
            where += [r.get("resourceLogicalId") for r in violation.get("violatingResources", [])]
            for place in where or ["?"]:
                yield f"{plugin.get('pluginName')}: {violation.get('ruleName')} at {place}"


def _acknowledgments(assembly: AppAssembly) -> Iterator[tuple[str, str, str, str]]:
    """(stack, construct path, rule id, reason) for every acknowledgment in the assembly's metadata."""
    for stack in assembly.stacks.values():
        if stack.metadata_file is None:
            continue
        metadata: dict[str, list[dict[str, Any]]] = json.loads(stack.metadata_file.read_text())
        for path, entries in metadata.items():
            for entry in entries:
                if entry.get("type") == ACK_METADATA:
                    for rule, reason in entry["data"].items():
                        yield stack.name, path, rule, reason


def test_compliance_packs_are_on_the_app(app_assembly: AppAssembly) -> None:
    assert has_compliance(app_assembly.app), "build_app must call stacks.compliance.apply_compliance"
    assert len(NAG_PACKS) == len(PACK_NAMES) == 2


def test_whole_app_is_nag_clean(app_assembly: AppAssembly) -> None:
    findings = list(_violations(app_assembly.validation_report()))
    assert app_assembly.validation_error is None and not findings, "\n".join(
        [f"{len(findings)} unacknowledged finding(s); see {app_assembly.directory}/validation-report.json", *findings]
    )


def test_every_acknowledgment_names_a_real_constraint(app_assembly: AppAssembly) -> None:
    acks = list(_acknowledgments(app_assembly))
    assert acks, "expected acknowledgments (the foundation has some); metadata not found"
    weak = [
        f"{stack}{path} {rule}: {reason!r}"
        for stack, path, rule, reason in acks
        if _TRIVIAL.match(reason) or len(reason.split()) < MIN_REASON_WORDS
    ]
    assert not weak, "acknowledgments need a reason naming the real constraint:\n" + "\n".join(weak)
    unknown = [rule for _, _, rule, _ in acks if not KNOWN_RULE.search(rule)]
    assert not unknown, f"acknowledgments for rules of no applied pack or built-in check: {unknown}"


def test_cfn_lint_has_no_errors_or_warnings(app_assembly: AppAssembly) -> None:
    assert app_assembly.stacks
    problems = []
    for name, stack in sorted(app_assembly.stacks.items()):
        for match in lint(stack.template_file.read_text(), regions=LINT_REGIONS):
            if not match.rule.id.startswith("I"):  # informational matches do not fail the CLI either
                problems.append(f"{name}: {match.rule.id} line {match.linenumber}: {match.message}")
    assert not problems, "\n".join(problems)


# --- packs and stages ----------------------------------------------------------------------------------


def _app_with_unencrypted_queue_in_a_stage(tmp_path: Path) -> tuple[cdk.App, cdk.Stage]:
    app = cdk.App(outdir=str(tmp_path))
    stage = cdk.Stage(app, "Prod")
    stack = cdk.Stack(stage, "Queue")
    sqs.Queue(stack, "Plain")  # AwsSolutions-SQS3/SQS4 and NIST SQS findings
    return app, stage


def _fails_validation(app: cdk.App) -> bool:
    try:
        app.synth()
    except RuntimeError as err:
        assert "Validation failed" in str(err) or "ValidationFailed" in str(err), err
        return True
    return False


def test_packs_on_the_app_also_check_stacks_inside_a_stage(tmp_path: Path) -> None:
    app, _ = _app_with_unencrypted_queue_in_a_stage(tmp_path)
    assert apply_compliance(app) is True
    assert _fails_validation(app)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert any("Prod/Queue/Plain" in line for line in _violations(report))


def test_packs_can_be_applied_to_a_stage_alone(tmp_path: Path) -> None:
    app, stage = _app_with_unencrypted_queue_in_a_stage(tmp_path)
    assert apply_compliance(stage) is True
    assert has_compliance(stage) and not has_compliance(app)
    assert _fails_validation(app)


def test_a_stage_already_covered_by_its_app_is_not_checked_twice(tmp_path: Path) -> None:
    app, stage = _app_with_unencrypted_queue_in_a_stage(tmp_path)
    assert apply_compliance(app) is True
    assert apply_compliance(stage) is False
    assert apply_compliance(app) is False
    assert has_compliance(stage)


def test_without_packs_the_same_app_synthesizes(tmp_path: Path) -> None:
    """The control for the two tests above: the failure comes from the packs, not from CDK."""
    app, _ = _app_with_unencrypted_queue_in_a_stage(tmp_path)
    assert not _fails_validation(app)


def test_packs_need_an_app_or_stage() -> None:
    with pytest.raises(TypeError, match="App or a Stage"):
        apply_compliance(cdk.Stack(cdk.App(), "S"))  # type: ignore[arg-type]
