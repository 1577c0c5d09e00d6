"""The deployed account as IAM would see it: every role's identity statements and every resource policy, read
from the synthesized templates with their intrinsics resolved (``tests.iam.intrinsics``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.iam.evaluator import (
    ContextValue,
    Decision,
    Policies,
    PolicyRef,
    Principal,
    Request,
    Resource,
    evaluate,
    statements_of,
)
from tests.iam.intrinsics import ACCOUNT, PARTITION, REGION, Resolver


@dataclass(frozen=True)
class Role:
    stack: str
    logical_id: str
    arn: str
    statements: tuple[PolicyRef, ...]

    @property
    def principal(self) -> Principal:
        return Principal(arn=self.arn, account=ACCOUNT)


class Account:
    """Roles by (stack, logical id) and resource policies by the resource's ARN (bucket, key, queue, topic)."""

    def __init__(
        self, templates: Mapping[str, Mapping[str, Any]], *, account: str = ACCOUNT, region: str = REGION
    ) -> None:
        self.templates = templates
        self.account, self.region = account, region  # the stacks' environment (a pipeline stage's, or the fake one)
        self.roles: dict[tuple[str, str], Role] = {}
        self.resource_policies: dict[str, tuple[PolicyRef, ...]] = {}
        self.key_arns: set[str] = set()
        for stack in templates:
            self._read(self.resolver(stack))

    def resolver(self, stack: str) -> Resolver:
        return Resolver(self.templates, stack, account=self.account, region=self.region)

    def _read(self, r: Resolver) -> None:
        attached: dict[str, list[PolicyRef]] = {}
        by_arn: dict[str, list[PolicyRef]] = {}
        for logical, res in r.resources.items():
            kind, props = res["Type"], res.get("Properties", {})
            source = f"{r.stack}/{logical}"
            if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                refs = statements_of(source, r.resolve(props["PolicyDocument"]))
                for role in props.get("Roles", []):
                    attached.setdefault(r.resolve(role), []).extend(refs)
                if kind == "AWS::IAM::ManagedPolicy":
                    by_arn[r.ref(logical)] = list(refs)
            elif kind == "AWS::S3::BucketPolicy":
                bucket = f"arn:{PARTITION}:s3:::{r.resolve(props['Bucket'])}"
                self.resource_policies[bucket] = statements_of(source, r.resolve(props["PolicyDocument"]))
            elif kind == "AWS::KMS::Key":
                key = r.get_att(logical, "Arn")
                self.key_arns.add(key)
                self.resource_policies[key] = statements_of(source, r.resolve(props["KeyPolicy"]))
            elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
                document = statements_of(source, r.resolve(props["PolicyDocument"]))
                for target in props.get("Queues", props.get("Topics", [])):
                    url_or_arn = str(r.resolve(target))
                    self.resource_policies[_queue_arn(url_or_arn)] = document
        for logical, res in r.resources.items():
            if res["Type"] != "AWS::IAM::Role":
                continue
            props = res.get("Properties", {})
            statements = list(attached.get(r.ref(logical), []))
            for inline in props.get("Policies", []):
                statements += statements_of(
                    f"{r.stack}/{logical}/{inline['PolicyName']}", r.resolve(inline["PolicyDocument"])
                )
            for managed in r.resolve(props.get("ManagedPolicyArns", [])):
                if managed not in by_arn:
                    raise ValueError(f"{r.stack}/{logical} uses a policy not in the templates: {managed}")
                statements += by_arn[managed]
            self.roles[(r.stack, logical)] = Role(r.stack, logical, r.get_att(logical, "Arn"), tuple(statements))

    def role(self, stack: str, id_prefix: str) -> Role:
        """The one role of ``stack`` whose logical id starts with ``id_prefix`` (CDK appends a hash)."""
        found = [role for (s, logical), role in self.roles.items() if s == stack and logical.startswith(id_prefix)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} roles in {stack} start with {id_prefix}: {[r.logical_id for r in found]}")
        return found[0]

    def policies_for(self, principal_statements: tuple[PolicyRef, ...], resource_arn: str) -> Policies:
        resource = self.resource_policies.get(_policy_owner(resource_arn), ())
        is_key = _policy_owner(resource_arn) in self.key_arns
        return Policies(identity=principal_statements, resource=resource, is_kms_key_policy=is_key)

    def evaluate(
        self, role: Role | Principal, action: str, resources: tuple[Resource, ...], **context: Any
    ) -> Decision:
        principal = role.principal if isinstance(role, Role) else role
        statements = role.statements if isinstance(role, Role) else ()
        base: dict[str, ContextValue] = {
            "aws:SecureTransport": True,
            "aws:PrincipalArn": principal.arn,
            "aws:PrincipalAccount": self.account,
        }
        request = Request(principal, action, resources, {**base, **context})
        return evaluate(request, {res.arn: self.policies_for(statements, res.arn) for res in resources})

    def all_roles(self) -> Iterator[Role]:
        return iter(self.roles.values())


def _policy_owner(arn: str) -> str:
    """The ARN whose resource policy governs ``arn``: an object's bucket, else the resource itself."""
    if arn.startswith(f"arn:{PARTITION}:s3:::"):
        return arn.split("/", 1)[0]
    return arn


def _queue_arn(url_or_arn: str) -> str:
    if url_or_arn.startswith("https://sqs."):
        _, _, host, account, name = url_or_arn.split("/")
        region = host.split(".")[1]
        return f"arn:{PARTITION}:sqs:{region}:{account}:{name}"
    return url_or_arn
