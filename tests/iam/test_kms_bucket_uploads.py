"""Every KMS-encrypted bucket of every synthesized template (weights, results, the pipeline's artifact bucket and
its cross-region replication bucket, in the default app, 13B, 70B and every pipeline stage) takes uploads only
under its own key (issue 16, item 9).

With ``x-amz-server-side-encryption: aws:kms`` and no ``x-amz-server-side-encryption-aws-kms-key-id``, S3 encrypts
under the AWS managed key ``aws/s3`` (S3 API reference, PutObject,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html), which our key policies do not govern; so each
bucket policy must refuse that, and any other key, while an upload without any header gets the bucket default.
The buckets are found by their ``BucketEncryption`` (SSE-KMS), so a new KMS bucket is covered without a change
here. The writer is a principal whose identity policy allows ``s3:PutObject`` anywhere, so what decides is the
bucket policy alone. The pipeline's own writers (CodePipeline into each region's artifact store, CodeBuild's output
artifacts) are evaluated with their real roles and the key id they send (their ``EncryptionKey``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stacks.pipeline_stack import PIPELINE_STACK_NAME
from tests.iam.account import Account, Role
from tests.iam.assemblies import ASSEMBLIES, accounts_of, assembly_directory
from tests.iam.code_calls import ROOT
from tests.iam.evaluator import ContextValue, Decision, Policies, PolicyRef, Request, Resource, evaluate

SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
OBJECT = "models/llama-2-7b-fp16/config.json"


@dataclass(frozen=True)
class KmsBucket:
    account: Account
    stack: str
    name: str
    key_id: str  # the bucket's default key, as its BucketEncryption names it


def kms_buckets(accounts: list[Account]) -> Iterator[KmsBucket]:
    for account in accounts:
        for stack in account.templates:
            r = account.resolver(stack)
            for logical, res in r.resources.items():
                if res["Type"] != "AWS::S3::Bucket":
                    continue
                rules = res["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
                default = rules[0]["ServerSideEncryptionByDefault"] if rules else {}
                if default.get("SSEAlgorithm") == "aws:kms":
                    yield KmsBucket(account, stack, r.ref(logical), str(r.resolve(default["KMSMasterKeyID"])))


def _writer(account: Account) -> Role:
    allow = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}
    arn = f"arn:aws:iam::{account.account}:role/any-writer"
    return Role("test", "AnyWriter", arn, (PolicyRef("test/AnyWriter", 0, allow),))


def _put(bucket: KmsBucket, headers: dict[str, Any]) -> Decision:
    resource = Resource(f"arn:aws:s3:::{bucket.name}/{OBJECT}")
    return bucket.account.evaluate(_writer(bucket.account), "s3:PutObject", (resource,), **headers)


@pytest.fixture(scope="module", params=ASSEMBLIES)
def buckets(request: pytest.FixtureRequest) -> list[KmsBucket]:
    found = list(kms_buckets(accounts_of(assembly_directory(request, request.param))))
    assert found, "no KMS bucket found: the search is broken"
    return found


def test_the_search_finds_every_kind_of_kms_bucket(buckets: list[KmsBucket]) -> None:
    stacks = {b.stack for b in buckets}
    assert any(s.endswith("LlamaFoundationStack") for s in stacks)  # weights
    assert any(s.endswith("LlamaBenchmarkStack") for s in stacks)  # results
    if any(s == PIPELINE_STACK_NAME for s in {s for b in buckets for s in b.account.templates}):
        assert PIPELINE_STACK_NAME in stacks  # the artifact bucket
        assert any("-support-" in s for s in stacks)  # the us-west-2 replication bucket


@pytest.mark.parametrize(
    ("headers", "allowed", "sid"),
    [
        ({}, True, None),  # no header: the bucket default, this key
        ({SSE: "aws:kms", SSE_KEY: "<own key>"}, True, None),
        ({SSE: "aws:kms"}, False, "DenyAwsManagedKey"),  # would be aws/s3
        ({SSE: "aws:kms", SSE_KEY: "<other key>"}, False, "DenyOtherKeys"),
        ({SSE: "AES256"}, False, "DenyOtherEncryption"),
        ({SSE: "aws:kms:dsse", SSE_KEY: "<own key>"}, False, "DenyOtherEncryption"),
    ],
)
def test_uploads_are_under_the_buckets_own_key_only(
    buckets: list[KmsBucket], headers: dict[str, str], allowed: bool, sid: str | None
) -> None:
    wrong = []
    for bucket in buckets:
        other = bucket.key_id.rsplit(":", 1)[0] + ":key/0f0f0f0f-1111-2222-3333-444455556666"
        values = {k: {"<own key>": bucket.key_id, "<other key>": other}.get(v, v) for k, v in headers.items()}
        decision = _put(bucket, values)
        if decision.allowed != allowed or (sid is not None and f"({sid})" not in decision.reason):
            wrong.append(f"{bucket.stack}/{bucket.name} {values}: {decision.reason}")
    assert not wrong, "\n".join(wrong)


# --- what the pipeline itself sends ------------------------------------------------------------------------


def _bucket_policy(accounts: list[Account], bucket: str) -> tuple[PolicyRef, ...]:
    (policy,) = [
        a.resource_policies[f"arn:aws:s3:::{bucket}"]
        for a in accounts
        if f"arn:aws:s3:::{bucket}" in a.resource_policies
    ]
    return policy


def _pipeline_writes(accounts: list[Account]) -> Iterator[tuple[str, Role, str, str]]:
    """(who, role, bucket, key id): CodePipeline into each region's artifact store, each CodeBuild project into the
    pipeline's artifact bucket, naming the key the way each is configured to."""
    (pipeline,) = [a for a in accounts if PIPELINE_STACK_NAME in a.templates]
    r = pipeline.resolver(PIPELINE_STACK_NAME)
    roles = {role.arn: role for role in pipeline.all_roles()}
    for res in r.resources.values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::CodePipeline::Pipeline":
            role = roles[r.resolve(props["RoleArn"])]
            for store in props["ArtifactStores"]:
                artifact_store = store["ArtifactStore"]
                key_id = r.resolve(artifact_store["EncryptionKey"]["Id"])
                yield f"CodePipeline -> {store['Region']}", role, r.resolve(artifact_store["Location"]), key_id
    artifact_bucket = next(
        r.resolve(s["ArtifactStore"]["Location"])
        for res in r.resources.values()
        if res["Type"] == "AWS::CodePipeline::Pipeline"
        for s in res["Properties"]["ArtifactStores"]
        if s["Region"] == pipeline.region
    )
    for logical, res in r.resources.items():
        if res["Type"] == "AWS::CodeBuild::Project" and "EncryptionKey" in res["Properties"]:
            role = roles[r.resolve(res["Properties"]["ServiceRole"])]
            yield f"CodeBuild {logical}", role, artifact_bucket, r.resolve(res["Properties"]["EncryptionKey"])


def test_the_pipelines_own_uploads_are_allowed(request: pytest.FixtureRequest) -> None:
    accounts = accounts_of(assembly_directory(request, "pipeline"))
    writes = list(_pipeline_writes(accounts))
    assert {w[0] for w in writes} >= {"CodePipeline -> us-east-1", "CodePipeline -> us-west-2"}
    denied, evaluated = [], []
    for who, role, bucket, key_id in writes:
        resource = Resource(f"arn:aws:s3:::{bucket}/assembly/artifact.zip")
        if not any(r.statement.get("Effect") == "Allow" for r in role.statements if "s3:PutObject" in str(r.statement)):
            continue  # this role never writes artifacts (no PutObject grant at all)
        headers: dict[str, ContextValue] = {SSE: "aws:kms", SSE_KEY: key_id, "aws:SecureTransport": True}
        decision = evaluate(
            Request(role.principal, "s3:PutObject", (resource,), headers),
            Policies(identity=role.statements, resource=_bucket_policy(accounts, bucket)),
        )
        evaluated.append(who)
        if not decision.allowed:
            denied.append(f"{who} into {bucket} naming {key_id}: {decision.reason}")
    assert not denied, "\n".join(denied)
    assert {"CodePipeline -> us-east-1", "CodePipeline -> us-west-2"} <= set(evaluated)
    assert any(w.startswith("CodeBuild ") for w in evaluated), evaluated


def test_no_code_of_ours_asks_s3_for_aws_kms_without_a_key() -> None:
    """The handlers and the benchmark write with no encryption header (the bucket default applies); a call that
    asks for SSE-KMS must name the key (``SSEKMSKeyId``), or the buckets refuse it."""
    offenders = []
    for path in [*(ROOT / "benchmark").rglob("*.py"), *(ROOT / "lambda").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                keywords = {k.arg for k in node.keywords}
                if "ServerSideEncryption" in keywords and "SSEKMSKeyId" not in keywords:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
