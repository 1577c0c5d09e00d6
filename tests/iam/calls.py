"""Every AWS call the system makes, as IAM requests: who calls, which action, on which resources.

The actions and the resource types each is authorised on come from the Service Authorization Reference
(``tests.iam.reference``), never from our policies; the names (bucket, prefix, endpoint, image) come from the
synthesized templates and the rendered state machine, as the running system would see them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.iam import reference
from tests.iam.account import Account, Role
from tests.iam.evaluator import ContextValue, Decision, Principal, Resource
from tests.iam.intrinsics import ACCOUNT, PARTITION, REGION, Resolver

Names = Mapping[str, str]


@dataclass(frozen=True)
class Call:
    component: str  # who makes it and why, for the failure message
    role: Role | Principal
    action: str
    resources: Mapping[str, Names] = field(default_factory=dict)  # resource type -> ARN variables; {} = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    resource_context: Mapping[str, Mapping[str, ContextValue]] = field(default_factory=dict)  # per resource type
    account: str = ACCOUNT  # the account that owns the resources

    def request_resources(self) -> tuple[Resource, ...]:
        """The ARNs the reference says this action is authorised on, for the names given; checks the call names
        every required resource type and only carries condition keys the reference lists for that type."""
        missing = reference.missing_types(self.action, set(self.resources))
        if missing:
            raise AssertionError(f"{self.component}: {self.action} also needs resource types {sorted(missing)}")
        documented = reference.action_condition_keys(self.action)
        service_keys = [k for k in self.context if not k.startswith(("aws:", "kms:EncryptionContext:"))]
        undocumented = [k for k in service_keys if not any(_glob_key(d, k) for d in documented)]
        if undocumented:
            raise AssertionError(f"{self.action} carries no {undocumented} (Service Authorization Reference)")
        if not self.resources:
            return (Resource("*"),)
        out = []
        for kind, names in self.resources.items():
            extra = dict(self.resource_context.get(kind, {}))
            documented = reference.condition_keys(self.action, kind)
            undocumented = [k for k in extra if not any(_glob_key(d, k) for d in documented)]
            if undocumented:
                raise AssertionError(
                    f"{self.action} on {kind} carries no {undocumented} (Service Authorization Reference)"
                )
            account = names.get("Account", self.account)
            arn = reference.arn(self.action, kind, names, account=account)
            if self.action.startswith("logs:") and kind == "log-group":
                # CloudWatch Logs authorises log-group actions on "<group ARN>:log-stream:", as its access-denied
                # messages show, which is why log-group grants end in ":*".
                arn += ":log-stream:"
            out.append(Resource(arn, extra))
        return tuple(out)

    def evaluate(self, account: Account) -> Decision:
        return account.evaluate(self.role, self.action, self.request_resources(), **self.context)


def _glob_key(documented: str, key: str) -> bool:
    """``aws:ResourceTag/${TagKey}`` documents every ``aws:ResourceTag/<tag>``."""
    return re.fullmatch(re.sub(r"\\\$\\\{\w+\\\}", ".+", re.escape(documented)), key.lower()) is not None


def _s3_object(bucket: str, key: str) -> dict[str, Names]:
    return {"object": {"BucketName": bucket, "ObjectName": key}}


def _key(arn: str) -> dict[str, Names]:
    return {"key": {"KeyId": arn.rsplit("/", 1)[1]}}


def s3_kms_calls(component: str, role: Role, key_arn: str, bucket: str, *, write: bool, read: bool) -> Iterator[Call]:
    """What S3 asks KMS for on the caller's behalf with the caller's permissions (SSE-KMS, bucket key on)."""
    context = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    context["kms:EncryptionContext:aws:s3:arn"] = f"arn:{PARTITION}:s3:::{bucket}"  # bucket key: the bucket's ARN
    if write:
        yield Call(f"{component} (SSE-KMS upload)", role, "kms:GenerateDataKey", _key(key_arn), context)
    if read or write:  # reads, and multipart uploads (S3 decrypts the data key to encrypt each part)
        yield Call(f"{component} (SSE-KMS read/multipart)", role, "kms:Decrypt", _key(key_arn), context)


# --- SageMaker hosting with an execution role -------------------------------------------------------------


@dataclass(frozen=True)
class Hosting:
    """What one model needs at run time: its endpoint, weights, image and network, resolved."""

    endpoint: str
    bucket: str
    prefix: str
    key_arn: str
    image_account: str
    repository: str
    vpc_arn: str
    subnet: str
    security_group: str


def sagemaker_hosting_calls(component: str, role: Role, h: Hosting) -> Iterator[Call]:
    """Pull the image, read the weights, log, publish metrics and attach ENIs (SageMaker with the role)."""
    yield Call(f"{component}: ECR login", role, "ecr:GetAuthorizationToken")
    repo = {"repository": {"RepositoryName": h.repository, "Account": h.image_account}}
    for action in ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"):
        yield Call(f"{component}: image pull", role, action, repo)
    yield Call(
        f"{component}: list weights",
        role,
        "s3:ListBucket",
        {"bucket": {"BucketName": h.bucket}},
        {"s3:prefix": h.prefix, "s3:TlsVersion": 1.2},
    )
    for name in ("config.json", "model-00001-of-00002.safetensors"):
        yield Call(f"{component}: read weights", role, "s3:GetObject", _s3_object(h.bucket, h.prefix + name))
    yield from s3_kms_calls(component, role, h.key_arn, h.bucket, write=False, read=True)
    group = f"/aws/sagemaker/Endpoints/{h.endpoint}"
    stream = {"log-stream": {"LogGroupName": group, "LogStreamName": "AllTraffic/i-0123456789abcdef0"}}
    yield Call(f"{component}: logs", role, "logs:CreateLogGroup", {"log-group": {"LogGroupName": group}})
    yield Call(f"{component}: logs", role, "logs:DescribeLogStreams", {"log-group": {"LogGroupName": group}})
    yield Call(f"{component}: logs", role, "logs:CreateLogStream", stream)
    yield Call(f"{component}: logs", role, "logs:PutLogEvents", stream)
    yield Call(
        f"{component}: instance metrics",
        role,
        "cloudwatch:PutMetricData",
        context={"cloudwatch:namespace": "/aws/sagemaker/Endpoints"},
    )
    in_vpc = {"ec2:Vpc": h.vpc_arn}
    eni = {"NetworkInterfaceId": "eni-0123456789abcdef0"}
    yield Call(
        f"{component}: attach to the VPC",
        role,
        "ec2:CreateNetworkInterface",
        {
            "network-interface": eni,
            "subnet": {"SubnetId": h.subnet},
            "security-group": {"SecurityGroupId": h.security_group},
        },
        resource_context={"network-interface": in_vpc, "subnet": in_vpc, "security-group": in_vpc},
    )
    for action in (
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
    ):
        yield Call(
            f"{component}: manage ENIs",
            role,
            action,
            {"network-interface": eni},
            resource_context={"network-interface": in_vpc},
        )
    for action in (
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeDhcpOptions",
    ):
        yield Call(f"{component}: read the VpcConfig", role, action)


def hosting_of_endpoint_stack(account: Account, stack: str) -> Hosting:
    """The hosting facts of one scenario stack, read from its Model and Endpoint resources."""
    r = Resolver(account.templates, stack)
    (model,) = [res for res in r.resources.values() if res["Type"] == "AWS::SageMaker::Model"]
    (endpoint,) = [res for res in r.resources.values() if res["Type"] == "AWS::SageMaker::Endpoint"]
    props = r.resolve(model["Properties"])
    image = props["PrimaryContainer"]["Image"]  # <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>
    uri = props["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    return Hosting(
        endpoint=str(r.resolve(endpoint["Properties"]["EndpointName"])).lower(),
        bucket=bucket,
        prefix=prefix,
        key_arn=bucket_key(account, bucket),
        image_account=image.split(".", 1)[0],
        repository=image.split("/", 1)[1].split(":", 1)[0],
        vpc_arn=foundation_vpc_arn(account),
        subnet=props["VpcConfig"]["Subnets"][0],
        security_group=props["VpcConfig"]["SecurityGroupIds"][0],
    )


def bucket_key(account: Account, bucket: str) -> str:
    """The customer key a bucket encrypts with by default, from its BucketEncryption."""
    for stack in account.templates:
        r = Resolver(account.templates, stack)
        for logical, res in r.resources.items():
            if res["Type"] == "AWS::S3::Bucket" and r.ref(logical) == bucket:
                rule = res["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                return str(r.resolve(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]))
    raise KeyError(bucket)


def foundation_vpc_arn(account: Account, stack: str = "LlamaFoundationStack") -> str:
    r = Resolver(account.templates, stack)
    (vpc,) = [logical for logical, res in r.resources.items() if res["Type"] == "AWS::EC2::VPC"]
    return f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:vpc/{r.ref(vpc)}"


# --- the state machine's tasks, read from the rendered ASL --------------------------------------------------


def tasks_of(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for nested in ("ItemProcessor", "Iterator"):
            if nested in state:
                yield from tasks_of(state[nested])
        for branch in state.get("Branches", []):
            yield from tasks_of(branch)


def state_machine_definition(account: Account, stack: str) -> tuple[str, dict[str, Any]]:
    r = Resolver(account.templates, stack)
    (logical,) = [k for k, v in r.resources.items() if v["Type"] == "AWS::StepFunctions::StateMachine"]
    props = r.resources[logical]["Properties"]
    return r.ref(logical), json.loads(r.resolve(props["DefinitionString"]))


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


_NAME_VARIABLE = {"endpoint": "EndpointName", "endpoint-config": "EndpointConfigName", "model": "ModelName"}


def sagemaker_call(role: Role, action: str, kind: str, name: str, **tags: str) -> Call:
    """A SageMaker call on one named resource (CreateEndpoint also on its endpoint config), optionally tagged."""
    extra = {kind: {f"aws:ResourceTag/{k}": v for k, v in tags.items()}} if tags else {}
    resources = {kind: {_NAME_VARIABLE[kind]: name}}
    if action == "sagemaker:CreateEndpoint":
        resources["endpoint-config"] = {"EndpointConfigName": name}
    return Call(action, role, action, resources, resource_context=extra)


def pass_role_call(role: Role, passed: Role, service: str) -> Call:
    names = {"role": {"RoleNameWithPath": passed.arn.rsplit("/", 1)[1]}}
    return Call("iam:PassRole", role, "iam:PassRole", names, {"iam:PassedToService": service})
