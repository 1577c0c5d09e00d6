"""What CloudFormation's execution role needs to deploy these stacks, from CloudFormation's own resource schemas.

Each resource type in the CloudFormation registry declares the IAM actions its create, read, update and delete
handlers call (``handlers.<op>.permissions``); cfn-lint ships those schemas. The policy for ``cdk bootstrap
--cloudformation-execution-policies`` is their union over the resource types the synthesized templates use,
plus what CloudFormation itself calls for these templates:

- ``cloudformation:DescribeStacks``: ``Fn::GetStackOutput`` (CDK's cross-stack references) is resolved with the
  execution role of the stack being deployed, unless a ``RoleArn`` is given;
- the CDK bootstrap assets bucket (``s3:GetObject``) for Lambda code, which Lambda fetches with the caller's rights;
- CodeBuild projects, whose type predates the registry schemas and declares no handlers.

``python -m stacks.execution_policy docs/cfn-execution-policy cdk.out/pipeline/assembly-*`` writes the policy, in
parts that each fit IAM's 6,144-character limit for a managed policy, from the pipeline's stage assemblies (the
stacks a stage account gets); docs/cfn-execution-policy/ holds that output.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA_REGION = "us-east-1"
STACK_OUTPUTS = frozenset({"cloudformation:DescribeStacks"})
# Types without handler declarations in the registry: what their CloudFormation support calls.
LEGACY_TYPES: Mapping[str, frozenset[str]] = {
    "AWS::CodeBuild::Project": frozenset(
        {"codebuild:CreateProject", "codebuild:UpdateProject", "codebuild:DeleteProject", "codebuild:BatchGetProjects"}
    ),
}
ASSETS_BUCKET = "arn:aws:s3:::cdk-hnb659fds-assets-*"
MANAGED_POLICY_MAX_CHARS = 6144  # IAM quota: managed policy document size, whitespace not counted


def _schemas_dir() -> Path:
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed: it carries the CloudFormation resource schemas")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


def handler_permissions(resource_type: str) -> frozenset[str]:
    """Every action the type's handlers declare (create, read, update, delete, list)."""
    if resource_type in LEGACY_TYPES:
        return LEGACY_TYPES[resource_type]
    schemas = _schemas_dir()
    index: dict[str, str] = json.loads((schemas / "providers" / f"{SCHEMA_REGION}.json").read_text())
    if resource_type not in index:
        raise KeyError(f"{resource_type} is not a CloudFormation resource type in {SCHEMA_REGION}")
    schema = json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())
    handlers: dict[str, Any] = schema.get("handlers") or {}
    if not handlers:
        raise KeyError(f"{resource_type} declares no handler permissions: add it to LEGACY_TYPES")
    return frozenset(p for h in handlers.values() for p in h.get("permissions", []))


def resource_types(templates: Iterable[Mapping[str, Any]]) -> set[str]:
    return {r["Type"] for t in templates for r in t.get("Resources", {}).values() if r["Type"].startswith("AWS::")}


def execution_policies(types: Iterable[str]) -> list[dict[str, Any]]:
    """The policy documents, split by service so each fits IAM's managed-policy size limit."""
    actions = set(STACK_OUTPUTS)
    for resource_type in types:
        actions |= handler_permissions(resource_type)
    by_service: dict[str, list[str]] = {}
    for action in sorted(actions):
        by_service.setdefault(action.split(":")[0], []).append(action)
    assets = {
        "Sid": "LambdaCodeAssets",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": f"{ASSETS_BUCKET}/*",
    }
    documents: list[list[dict[str, Any]]] = [[assets]]
    for service, service_actions in by_service.items():
        statement = {"Sid": _sid(service), "Effect": "Allow", "Action": service_actions, "Resource": "*"}
        if _size(documents[-1] + [statement]) > MANAGED_POLICY_MAX_CHARS:
            documents.append([])
        documents[-1].append(statement)
    return [{"Version": "2012-10-17", "Statement": statements} for statements in documents]


def _sid(service: str) -> str:
    return "".join(part.capitalize() for part in service.split("-")) + "Handlers"


def _size(statements: list[dict[str, Any]]) -> int:
    """Characters IAM counts: the JSON without whitespace."""
    return len(json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":")))


def assembly_templates(directory: Path) -> list[dict[str, Any]]:
    """Every template of a cloud assembly, nested stage assemblies included."""
    return [json.loads(p.read_text()) for p in sorted(directory.rglob("*.template.json"))]


def main(argv: list[str]) -> int:
    """Write one policy document per part into the first argument's folder, from the assemblies that follow."""
    if len(argv) < 2:
        print("usage: python -m stacks.execution_policy <output folder> <cloud assembly directory>...", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    templates = [t for directory in argv[1:] for t in assembly_templates(Path(directory))]
    for old in out.glob("part-*.json"):
        old.unlink()
    for number, document in enumerate(execution_policies(sorted(resource_types(templates))), start=1):
        (out / f"part-{number}.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
