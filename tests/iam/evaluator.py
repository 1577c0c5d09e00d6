"""IAM's documented policy evaluation, for one account, offline: enough to ask "would AWS allow this call?".

Follows the IAM User Guide ("Policy evaluation logic", "IAM JSON policy elements: Condition operators",
"Multivalued context keys") and, for KMS, the KMS Developer Guide ("Key policies"):

- an explicit Deny in any applicable policy wins;
- otherwise an Allow is needed from the principal's identity policies OR from the resource's policy naming the
  principal itself (same account); a resource policy that names the account root only delegates to IAM;
- KMS is the exception: the key policy must allow, either the principal directly or the account root, and in
  the second case an identity policy must allow too;
- a request that names several resources (``CreateEndpoint``: the endpoint and its config) needs every one.

Condition operators: the String, Numeric, Bool, Arn and Null families, ``...IfExists``, and the
``ForAnyValue:``/``ForAllValues:`` set qualifiers. A key missing from the request makes a positive operator
false and a negated one true; ``...IfExists`` makes either true; ``Null`` tests presence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | bool | int | float | Sequence[str]


@dataclass(frozen=True)
class Principal:
    arn: str  # a role ARN, or a service principal such as "logging.s3.amazonaws.com"
    account: str
    is_service: bool = False


@dataclass(frozen=True)
class Resource:
    arn: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)  # keys this resource adds (ec2:Vpc, tags)


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resources: tuple[Resource, ...]
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyRef:
    """One statement and where it came from, so a caller can see which grants a request used."""

    source: str  # e.g. "LlamaBenchmarkStack/ModelRoleDefaultPolicy049A86C4"
    index: int
    statement: Mapping[str, Any]


@dataclass
class Decision:
    allowed: bool
    reason: str
    used: list[tuple[PolicyRef, str, str]] = field(default_factory=list)  # (statement, action pattern, resource pat)


class UnsupportedPolicyError(ValueError):
    """A policy uses something this evaluator does not model: failing is safer than guessing."""


# --- matching ---------------------------------------------------------------------------------------------


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Actions are case-insensitive and may use wildcards (``kms:GenerateDataKey*``, ``s3:*``, ``*``)."""
    return _glob(pattern, action, ignore_case=True)


def arn_matches(pattern: str, arn: str) -> bool:
    """ARN patterns match component by component (partition, service, region, account, resource), case-sensitively.

    Wildcards do not cross the first five colons: ``arn:aws:s3:::b/*`` cannot match another service's ARN."""
    if pattern == "*":
        return True
    if "${" in pattern:
        raise UnsupportedPolicyError(f"policy variables are not modelled: {pattern}")
    p_parts, a_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(p_parts) != 6 or len(a_parts) != 6:
        return False
    return all(_glob(p, a) for p, a in zip(p_parts, a_parts, strict=True))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# --- conditions -------------------------------------------------------------------------------------------


def _compare(base: str, policy_value: Any, request_value: Any) -> bool:
    """One request value against one policy value under a positive operator (negation is applied by the caller)."""
    pv, rv = str(policy_value), request_value
    if base in ("StringEquals", "StringNotEquals"):
        return pv == str(rv)
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return pv.lower() == str(rv).lower()
    if base in ("StringLike", "StringNotLike"):
        return _glob(pv, str(rv))
    if base in ("ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"):
        return arn_matches(pv, str(rv))
    if base == "Bool":
        return pv.lower() == str(rv).lower()
    if base.startswith("Numeric"):
        a, b = float(rv), float(pv)
        return {
            "NumericEquals": a == b,
            "NumericNotEquals": a == b,
            "NumericLessThan": a < b,
            "NumericLessThanEquals": a <= b,
            "NumericGreaterThan": a > b,
            "NumericGreaterThanEquals": a >= b,
        }[base]
    raise UnsupportedPolicyError(f"condition operator {base} is not modelled")


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_NEGATED_NUMERIC = {"NumericNotEquals"}


def _single_value_matches(base: str, policy_values: list[Any], request_value: Any) -> bool:
    """Several policy values are OR-ed for a positive operator; a negated one matches when NONE of them does."""
    hit = any(_compare(base, v, request_value) for v in policy_values)
    return not hit if base in _NEGATED | _NEGATED_NUMERIC else hit


def condition_matches(operator: str, key: str, policy_value: Any, context: Mapping[str, ContextValue]) -> bool:
    """One ``{operator: {key: value}}`` entry against the request context (keys are case-insensitive)."""
    present = {k.lower(): v for k, v in context.items()}
    missing = key.lower() not in present
    request_value = present.get(key.lower())
    policy_values = _as_list(policy_value)
    if operator == "Null":
        want_missing = str(policy_values[0]).lower() == "true"
        return missing == want_missing
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if qualifier == "ForAllValues":  # true when every request value matches; vacuously true when none
        values = [] if missing else _as_list(request_value)
        return all(_single_value_matches(base, policy_values, v) for v in values)
    if qualifier == "ForAnyValue":  # true when at least one request value matches; false when none
        values = [] if missing else _as_list(request_value)
        return any(_single_value_matches(base, policy_values, v) for v in values)
    if qualifier:
        raise UnsupportedPolicyError(f"set qualifier {qualifier} is not modelled")
    if missing:
        # Documented: a missing key makes the condition false, except for negated operators (true) and IfExists.
        return if_exists or base in _NEGATED | _NEGATED_NUMERIC
    if isinstance(request_value, list | tuple):
        raise UnsupportedPolicyError(f"multivalued key {key} needs ForAnyValue/ForAllValues")
    return _single_value_matches(base, policy_values, request_value)


def conditions_match(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    """Every operator and every key of a Condition block must match (AND)."""
    return all(
        condition_matches(operator, key, value, context)
        for operator, keys in conditions.items()
        for key, value in keys.items()
    )


# --- statements -------------------------------------------------------------------------------------------


def _principal_matches(statement: Mapping[str, Any], principal: Principal) -> tuple[bool, bool]:
    """(matches, names the principal itself rather than its account)."""
    if "NotPrincipal" in statement:
        raise UnsupportedPolicyError("NotPrincipal is not modelled")
    spec = statement.get("Principal")
    if spec is None:
        return True, True  # an identity policy: it is attached to the principal
    if spec == "*":
        return True, True
    for kind, values in spec.items():
        for value in _as_list(values):
            if value == "*" and kind == "AWS":
                return True, True
            if kind == "Service" and principal.is_service and value == principal.arn:
                return True, True
            if kind == "AWS" and not principal.is_service:
                if value == principal.arn:
                    return True, True
                if value in (principal.account, f"arn:aws:iam::{principal.account}:root"):
                    return True, False
    return False, False


def _first_match(patterns: list[str], value: str, matcher: Any) -> str | None:
    return next((p for p in patterns if matcher(p, value)), None)


def statement_applies(
    statement: Mapping[str, Any], request: Request, resource: Resource, *, check_resource: bool = True
) -> tuple[str, str] | None:
    """(action pattern, resource pattern) the statement matched this request and resource with, or None."""
    if "Action" in statement:
        action = _first_match(_as_list(statement["Action"]), request.action, action_matches)
    elif "NotAction" in statement:
        hit = _first_match(_as_list(statement["NotAction"]), request.action, action_matches)
        action = None if hit else "NotAction"
    else:
        raise UnsupportedPolicyError(f"statement without Action: {statement}")
    if action is None:
        return None
    matched_resource = "*"
    if check_resource:
        if "Resource" in statement:
            hit = _first_match([str(r) for r in _as_list(statement["Resource"])], resource.arn, arn_matches)
            if hit is None:
                return None
            matched_resource = hit
        elif "NotResource" in statement:
            if _first_match([str(r) for r in _as_list(statement["NotResource"])], resource.arn, arn_matches):
                return None
            matched_resource = "NotResource"
    context = {**request.context, **resource.context}
    if not conditions_match(statement.get("Condition", {}), context):
        return None
    return action, matched_resource


@dataclass(frozen=True)
class Policies:
    """What applies to one request: the principal's identity statements and the resource's policy statements."""

    identity: tuple[PolicyRef, ...]
    resource: tuple[PolicyRef, ...] = ()
    is_kms_key_policy: bool = False  # the resource policy is a KMS key policy (it alone can grant)
    cross_account: bool = False  # principal and resource in different accounts: both sides must allow


def _evaluate_one(request: Request, resource: Resource, policies: Policies) -> Decision:
    used: list[tuple[PolicyRef, str, str]] = []
    identity_allow: list[tuple[PolicyRef, str, str]] = []
    resource_allow_direct: list[tuple[PolicyRef, str, str]] = []
    resource_allow_account: list[tuple[PolicyRef, str, str]] = []
    for ref in policies.identity:
        hit = statement_applies(ref.statement, request, resource)
        if hit is None:
            continue
        if ref.statement["Effect"] == "Deny":
            return Decision(False, f"explicit deny by {ref.source}#{ref.index}")
        if not request.principal.is_service:
            identity_allow.append((ref, *hit))
    for ref in policies.resource:
        matches, direct = _principal_matches(ref.statement, request.principal)
        # In a key policy "Resource": "*" means this key.
        if not matches:
            continue
        hit = statement_applies(ref.statement, request, resource, check_resource=not policies.is_kms_key_policy)
        if hit is None:
            continue
        if ref.statement["Effect"] == "Deny":
            return Decision(False, f"explicit deny by {ref.source}#{ref.index} ({ref.statement.get('Sid')})")
        (resource_allow_direct if direct else resource_allow_account).append((ref, *hit))
    if policies.is_kms_key_policy:
        if resource_allow_direct:
            used = resource_allow_direct + identity_allow
            return Decision(True, "key policy allows the principal", used)
        if resource_allow_account and identity_allow:
            return Decision(
                True, "key policy delegates to IAM, identity policy allows", identity_allow + resource_allow_account
            )
        return Decision(False, "the key policy does not allow it (directly or by delegating to IAM with an allow)")
    if policies.cross_account:
        if identity_allow and (resource_allow_direct or resource_allow_account):
            return Decision(True, "allowed by both accounts", identity_allow + resource_allow_direct)
        return Decision(False, "cross-account: the identity policy and the resource policy must both allow")
    if identity_allow or resource_allow_direct:
        return Decision(True, "allowed", identity_allow + resource_allow_direct)
    return Decision(False, "implicit deny: no statement allows it")


def evaluate(request: Request, policies_for: Mapping[str, Policies] | Policies) -> Decision:
    """Allowed only if every resource of the request is allowed; ``policies_for`` maps resource ARN -> Policies."""
    if not request.resources:
        raise ValueError("a request names at least one resource ('*' for actions without resource types)")
    used: list[tuple[PolicyRef, str, str]] = []
    for resource in request.resources:
        policies = policies_for if isinstance(policies_for, Policies) else policies_for[resource.arn]
        decision = _evaluate_one(request, resource, policies)
        if not decision.allowed:
            return Decision(False, f"{resource.arn}: {decision.reason}")
        used += decision.used
    return Decision(True, "allowed", used)


def statements_of(source: str, document: Mapping[str, Any]) -> tuple[PolicyRef, ...]:
    return tuple(PolicyRef(source, i, s) for i, s in enumerate(_as_list(document.get("Statement", []))))


def actions_of(statement: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in _as_list(statement.get("Action", []))]


def resources_of(statement: Mapping[str, Any]) -> list[str]:
    return [str(r) for r in _as_list(statement.get("Resource", []))]
