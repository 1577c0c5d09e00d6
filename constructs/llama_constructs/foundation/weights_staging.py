"""Stage weights from the Hugging Face Hub into the weights bucket, inside the account, with CodeBuild.

The endpoints read weights from S3 under network isolation, so something must copy them there once per
model. A CodeBuild project does it: ``hf download`` into local disk, then ``aws s3 sync`` to
``s3://<bucket>/<WEIGHTS_PREFIX>`` uncompressed (what ``S3Prefix`` + ``CompressionType: None`` reads).

- The project runs outside the VPC: the VPC is isolated (no NAT, no internet gateway) and the Hub is on the
  internet. It reaches AWS through public service endpoints over TLS, with the role's permissions below.
- The Hub token comes from Secrets Manager through the buildspec's ``env.secrets-manager`` section, by secret
  NAME: CodeBuild resolves it at build start. The value is never in the template, the project's
  environment, or the logs (CodeBuild masks secret values in build output).
- The role may read that one secret, list and write under ``models/`` of the weights bucket, use the key,
  and write its own log group. Nothing else.
- The model and the prefix are per build: ``aws codebuild start-build --environment-variables-override``
  (see docs/staging-weights.md). The buildspec checks them with the settings' rules before downloading:
  a Hub id, a prefix under ``models/``, a full commit id (the catalog's for that Hub id unless given).
- It stages exactly one Hub commit and writes ``<prefix>.staging.json`` beside the weights, naming the Hub id
  and the commit, for the preflight to compare with the deployment's ``hf_revision``.

``huggingface_hub`` is pinned to 0.36.2, the last 0.x release: its ``hf`` command is the one 1.x keeps
(``huggingface-cli`` was removed in 1.0). It and every dependency are installed from one wheel each, checked
against its sha256 (``catalog/data/staging_requirements.txt``), with the Hub token removed from pip's environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager

from catalog.models import HUB_COMMIT_PATTERN, HUB_REPO_ID_PATTERN, MODELS
from constructs import Construct
from llama_constructs.foundation.weights_bucket import WEIGHTS_ROOT
from settings.staging_record import RECORD_SUFFIX

DEFAULT_TOKEN_SECRET_NAME = "llama2/hf-token"
HUGGINGFACE_HUB_VERSION = "0.36.2"
# safetensors and the small JSON/tokenizer files TGI reads; skips the duplicate PyTorch .bin shards that
# the Llama 2 repositories also carry (they would double a 138 GB download for 70B).
DEFAULT_INCLUDE = "*.safetensors *.json tokenizer.model"
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_LOCAL_DIR = "/codebuild/output/weights"

COMPUTE_TYPES: dict[str, codebuild.ComputeType] = {
    "large": codebuild.ComputeType.LARGE,  # 128 GB disk: 7B and 13B, fp16 or GPTQ
    "xlarge": codebuild.ComputeType.X_LARGE,  # 256 GB disk: 70B fp16 (about 138 GB)
    "2xlarge": codebuild.ComputeType.X2_LARGE,  # 824 GB disk
}


@dataclass(frozen=True, kw_only=True)
class WeightsStagingProps:
    key: kms.IKey
    bucket: s3.IBucket
    token_secret_name: str = DEFAULT_TOKEN_SECRET_NAME
    compute: str = "large"  # one of COMPUTE_TYPES; --compute-type-override per build for bigger models
    timeout_minutes: int = 240
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN

    def __post_init__(self) -> None:
        if not _SECRET_NAME.match(self.token_secret_name) or self.token_secret_name.startswith("arn:"):
            raise ValueError(f"token_secret_name {self.token_secret_name!r} must be a Secrets Manager secret name")
        if self.compute not in COMPUTE_TYPES:
            raise ValueError(f"compute {self.compute!r} must be one of {', '.join(COMPUTE_TYPES)}")
        if not 5 <= self.timeout_minutes <= 2160:
            raise ValueError("timeout_minutes must be 5..2160 (the CodeBuild limits)")


# constructs/llama_constructs/foundation/ -> the checkout
STAGING_REQUIREMENTS = Path(__file__).resolve().parents[3] / "catalog" / "data" / "staging_requirements.txt"
_REQUIREMENTS_FILE = "/tmp/hub-requirements.txt"  # the build container's own scratch space
_INCLUDE_PATTERN = r"^[A-Za-z0-9_.*?/ -]+$"


def pinned_commits() -> dict[str, str]:
    """Hub id -> the catalog's commit: what the job stages when no HF_REVISION is given."""
    return {
        model.hub_ids[quant]: commit
        for model in MODELS.values()
        for quant, commit in model.hub_revisions.items()
        if commit is not None
    }


def _requirement_lines() -> list[str]:
    lines = [line for line in STAGING_REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    if not all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+ --hash=sha256:[0-9a-f]{64}", x) for x in lines):
        raise ValueError(f"{STAGING_REQUIREMENTS.name}: every line must be name==version --hash=sha256:<64 hex>")
    return lines


def _validate_inputs() -> list[str]:
    """Shell checks of the per-build inputs, with the settings' own rules; run before anything is downloaded."""
    defaults = " ".join(f'["{repo}"]="{commit}"' for repo, commit in sorted(pinned_commits().items()))
    return [
        f"pattern='{HUB_REPO_ID_PATTERN}'; [[ \"$HF_MODEL_ID\" =~ $pattern ]] "
        '|| { echo "HF_MODEL_ID must be a Hub repository id (owner/name), got: $HF_MODEL_ID"; exit 1; }',
        f'[[ "$WEIGHTS_PREFIX" =~ ^{WEIGHTS_ROOT}[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$ ]] '
        f'|| {{ echo "WEIGHTS_PREFIX must look like {WEIGHTS_ROOT}<name>/"; exit 1; }}',
        f"declare -A pinned=({defaults}); "
        'if [ -z "$HF_REVISION" ]; then HF_REVISION="${pinned[$HF_MODEL_ID]:-}"; fi; '
        '[ -n "$HF_REVISION" ] || { echo "no commit pinned for $HF_MODEL_ID in the catalog: '
        'pass HF_REVISION=<40-hex commit>"; exit 1; }',
        f"pattern='{HUB_COMMIT_PATTERN}'; [[ \"$HF_REVISION\" =~ $pattern ]] "
        '|| { echo "HF_REVISION must be a full commit id (40 hex digits), got: $HF_REVISION"; exit 1; }',
        f"pattern='{_INCLUDE_PATTERN}'; [[ \"$HF_INCLUDE\" =~ $pattern ]] "
        '|| { echo "HF_INCLUDE must be space-separated file patterns, got: $HF_INCLUDE"; exit 1; }',
        'echo "staging $HF_MODEL_ID@$HF_REVISION to s3://$WEIGHTS_BUCKET/$WEIGHTS_PREFIX"',
    ]


def buildspec(*, token_secret_name: str) -> dict[str, Any]:
    """The build: validate the inputs, download one Hub commit, check it, sync it, record the commit beside it."""
    requirements = " ".join(f"'{line}'" for line in _requirement_lines())
    record = '{"hf_model_id": "%s", "revision": "%s", "include": "%s", "build_id": "%s"}'  # all validated above
    return {
        "version": "0.2",
        "env": {
            "shell": "bash",
            "variables": {
                "HF_MODEL_ID": "",
                "WEIGHTS_PREFIX": "",
                "HF_REVISION": "",  # empty: the catalog's commit for HF_MODEL_ID
                "HF_INCLUDE": DEFAULT_INCLUDE,
                "HF_HUB_DISABLE_TELEMETRY": "1",
            },
            # NAME of the secret; CodeBuild fetches the value at build start and masks it in the logs.
            "secrets-manager": {"HF_TOKEN": token_secret_name},
        },
        "phases": {
            "install": {
                "runtime-versions": {"python": "3.12"},
                "commands": [
                    f"printf '%s\\n' {requirements} > {_REQUIREMENTS_FILE}",
                    # Every file checked against its hash, and pip never sees the Hub token.
                    "env -u HF_TOKEN pip install --quiet --disable-pip-version-check --require-hashes --no-deps "
                    f"--only-binary=:all: -r {_REQUIREMENTS_FILE}",
                ],
            },
            "pre_build": {"commands": _validate_inputs()},
            "build": {
                "commands": [
                    # One quoted argument per pattern: no word splitting surprises, no globbing.
                    'read -r -a patterns <<< "$HF_INCLUDE"; '
                    f'hf download "$HF_MODEL_ID" --revision "$HF_REVISION" --include "${{patterns[@]}}" '
                    f'--local-dir "{_LOCAL_DIR}"',
                    f'test -f "{_LOCAL_DIR}/config.json" || {{ echo "no config.json downloaded"; exit 1; }}',
                    f'ls "{_LOCAL_DIR}"/*.safetensors > /dev/null || {{ echo "no safetensors downloaded"; exit 1; }}',
                    f'aws s3 sync "{_LOCAL_DIR}" "s3://$WEIGHTS_BUCKET/$WEIGHTS_PREFIX" '
                    '--exclude ".cache/*" --only-show-errors',
                    # Beside the prefix, not in it: what the preflight compares with the deployment's hf_revision.
                    f'printf \'{record}\' "$HF_MODEL_ID" "$HF_REVISION" "$HF_INCLUDE" "$CODEBUILD_BUILD_ID" '
                    f'| aws s3 cp - "s3://$WEIGHTS_BUCKET/${{WEIGHTS_PREFIX%/}}{RECORD_SUFFIX}" '
                    "--content-type application/json --only-show-errors",
                ],
            },
            "post_build": {
                "commands": [
                    'aws s3 ls "s3://$WEIGHTS_BUCKET/$WEIGHTS_PREFIX" --recursive --summarize | tail -n 2',
                ],
            },
        },
    }


class WeightsStaging(Construct):
    """Exposes ``.project`` (the CodeBuild project), ``.role``, ``.log_group`` and ``.token_secret_name``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: WeightsStagingProps) -> None:
        super().__init__(scope, construct_id)
        self.token_secret_name = props.token_secret_name
        self.log_group = logs.LogGroup(
            self, "Logs", encryption_key=props.key, retention=props.log_retention, removal_policy=props.removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "codebuild.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            ),
            description="Stages Hugging Face Hub weights into the weights bucket under models/",
        )
        self.project = codebuild.Project(
            self,
            "Project",
            description="Copy a Hugging Face Hub model into s3://<weights bucket>/<WEIGHTS_PREFIX> (uncompressed)",
            # CDK would add its own inline grants (report groups, /aws/codebuild/* logs, key wildcards);
            # the role gets exactly the managed policy below instead.
            role=self.role.without_policy_updates(),
            build_spec=codebuild.BuildSpec.from_object(buildspec(token_secret_name=props.token_secret_name)),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=COMPUTE_TYPES[props.compute],
                privileged=False,
            ),
            environment_variables={
                "WEIGHTS_BUCKET": codebuild.BuildEnvironmentVariable(value=props.bucket.bucket_name),
            },
            encryption_key=props.key,
            timeout=cdk.Duration.minutes(props.timeout_minutes),
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group, enabled=True)
            ),
            concurrent_build_limit=4,
        )
        self._grant(props)

    def _grant(self, props: WeightsStagingProps) -> None:
        """Everything the build may do, as one customer-managed policy (no inline grants)."""
        secret = secretsmanager.Secret.from_secret_name_v2(self, "HubToken", props.token_secret_name)
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadHubToken",  # the name's ARN plus the random 6-character suffix Secrets Manager adds
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[f"{secret.secret_arn}-??????"],
                ),
                iam.PolicyStatement(
                    sid="ListModelsPrefix",
                    actions=["s3:ListBucket"],
                    resources=[props.bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{WEIGHTS_ROOT}*"]}},
                ),
                iam.PolicyStatement(
                    sid="WriteModelsPrefix",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],  # aws s3 sync: no ListParts
                    resources=[props.bucket.arn_for_objects(f"{WEIGHTS_ROOT}*")],
                ),
                iam.PolicyStatement(
                    # SSE-KMS uploads (multipart ones need Decrypt), the project's own encryption, and a
                    # token secret encrypted with this key.
                    sid="UseKey",
                    actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[props.key.key_arn],
                ),
            ],
        )
        self.project.node.add_dependency(self.policy)
        cdk.Validations.of(self.policy).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{_logical_id(props.bucket)}.Arn>/{WEIGHTS_ROOT}*]",
                reason="the build writes one model's files per run under a prefix chosen at start-build time; "
                "the grant is the models/ folder of the one weights bucket, which is all the job is for",
            )
        )


def _logical_id(bucket: s3.IBucket) -> str:
    cfn = bucket.node.default_child
    if not isinstance(cfn, cdk.CfnElement):
        raise TypeError("the weights bucket must be an s3.Bucket defined in this app")
    return cdk.Stack.of(cfn).resolve(cfn.logical_id)  # type: ignore[no-any-return]
