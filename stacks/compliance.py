"""The compliance packs every stack is checked against, in one place.

cdk-nag 3 packs are CDK policy-validation plugins: they run at synth over every template of the assembly
and fail it on any unacknowledged finding. Plugins registered on the App also run on the stacks inside a
``cdk.Stage`` (CDK collects plugins per stage and evaluates them over ``stacksRecursively``; tested in
tests/test_compliance.py), so registering at the App is enough for pipeline stages. ``apply_compliance``
also accepts a Stage, for a Stage synthesized on its own, and does nothing when the scope or an enclosing
stage already has the packs, so a stage never gets checked twice.
"""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from constructs import IConstruct

# Each entry builds a pack for a scope. Add a pack here and every app and stage gets it.
NAG_PACKS: tuple[Callable[[IConstruct], cdk.IPolicyValidationPlugin], ...] = (
    AwsSolutionsChecks,
    NIST80053R5Checks,
)
PACK_NAMES: tuple[str, ...] = ("AwsSolutions", "NIST.800.53.R5")
_MARKER = "llama2:compliance-packs"


def _has_packs(scope: IConstruct) -> bool:
    return any(entry.type == _MARKER for entry in scope.node.metadata)


def has_compliance(scope: IConstruct) -> bool:
    """True if the packs run on ``scope``: registered on it or on a stage that encloses it."""
    return any(_has_packs(s) for s in scope.node.scopes if cdk.Stage.is_stage(s))


def apply_compliance(scope: cdk.Stage) -> bool:
    """Register the packs on ``scope`` (an App or a Stage). Returns False if they already cover it."""
    if not cdk.Stage.is_stage(scope):
        raise TypeError(f"apply_compliance needs an App or a Stage, not {type(scope).__name__}")
    if has_compliance(scope):
        return False
    cdk.Validations.of(scope).add_plugins(*(pack(scope) for pack in NAG_PACKS))
    scope.node.add_metadata(_MARKER, ",".join(PACK_NAMES))
    return True
