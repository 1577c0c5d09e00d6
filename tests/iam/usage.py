"""Which grants the calls used: a grant no call needs is as much a finding as a call no grant allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tests.iam.account import Account, Role
from tests.iam.calls import Call
from tests.iam.evaluator import PolicyRef, actions_of, resources_of


@dataclass(frozen=True)
class Unused:
    owner: str  # a role's logical id, or the ARN of the resource whose policy it is
    ref: PolicyRef
    what: str  # "action" or "resource"
    item: str

    def __str__(self) -> str:
        sid = self.ref.statement.get("Sid", "")
        verb = "needs" if self.what == "action" else "touches"
        return f"{self.owner} {self.ref.source}#{self.ref.index} {sid}: no call {verb} {self.item}"


def unused_grants(account: Account, roles: Iterable[Role], calls: Iterable[Call]) -> list[Unused]:
    """Each Allow statement's action patterns and resource entries, in the roles' identity policies and in every
    resource policy, that no allowed call matched (a key policy's ``*`` is the key itself)."""
    used: set[tuple[str, int, str, str]] = set()
    for call in calls:
        for ref, action, resource in call.evaluate(account).used:
            used.add((ref.source, ref.index, action, resource))
    owners = [(role.logical_id, role.statements) for role in roles]
    owners += [(arn, refs) for arn, refs in account.resource_policies.items()]
    findings = []
    for owner, statements in owners:
        for ref in statements:
            if ref.statement["Effect"] != "Allow":
                continue
            hits = [(a, r) for (src, i, a, r) in used if src == ref.source and i == ref.index]
            findings += [
                Unused(owner, ref, "action", a) for a in actions_of(ref.statement) if all(a != x for x, _ in hits)
            ]
            findings += [
                Unused(owner, ref, "resource", r) for r in resources_of(ref.statement) if all(r != y for _, y in hits)
            ]
    return findings
