"""Turn synthesized CloudFormation values into the concrete strings AWS would see, for a fake account and region.

Every resource gets a deterministic physical name derived from its logical id (or the name its properties set),
so an ARN built in one stack and the same resource referenced from another (``Fn::GetStackOutput``,
``Fn::ImportValue``) resolve to the same string, as they would once deployed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ACCOUNT = "111122223333"
REGION = "us-east-1"
PARTITION = "aws"
_PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


class UnresolvedIntrinsicError(ValueError):
    pass


class Resolver:
    """Resolves values of one stack (``stack``) of an app whose templates are ``templates`` (name -> template).

    ``account`` and ``region`` are what the pseudo parameters and the ARNs of the stack's own resources resolve
    to: the fake ones for an environment-agnostic app, a stage's own for the stacks of a pipeline stage (whose
    templates also carry that account and region as literals)."""

    def __init__(
        self,
        templates: Mapping[str, Mapping[str, Any]],
        stack: str,
        *,
        account: str = ACCOUNT,
        region: str = REGION,
    ) -> None:
        self.templates = templates
        self.stack = stack
        self.account = account
        self.region = region
        self.template = templates[stack]
        self.resources: Mapping[str, Any] = self.template.get("Resources", {})

    def for_stack(self, stack: str) -> Resolver:
        return Resolver(self.templates, stack, account=self.account, region=self.region)

    # -- physical names --------------------------------------------------------------------------------------
    def _props(self, logical: str) -> Mapping[str, Any]:
        return self.resources[logical].get("Properties", {})  # type: ignore[no-any-return]

    def name(self, logical: str) -> str:
        """A resource's physical name: the one its properties set, else a stable one made from its logical id."""
        kind = self.resources[logical]["Type"]
        name_prop = {
            "AWS::IAM::Role": "RoleName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::CodeBuild::Project": "Name",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::SageMaker::Endpoint": "EndpointName",
            "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
            "AWS::SageMaker::Model": "ModelName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::KMS::Alias": "AliasName",
        }.get(kind)
        if name_prop and name_prop in self._props(logical):
            return str(self.resolve(self._props(logical)[name_prop]))
        return f"{self.stack.lower()}-{logical.lower()}"

    def ref(self, logical: str) -> str:
        if logical in _PSEUDO:
            return str({**_PSEUDO, "AWS::AccountId": self.account, "AWS::Region": self.region}[logical])
        if logical == "AWS::StackName":
            return self.stack
        if logical not in self.resources:
            raise UnresolvedIntrinsicError(f"Ref to unknown {logical} in {self.stack}")
        kind = self.resources[logical]["Type"]
        name = self.name(logical)
        if kind in ("AWS::KMS::Key",):
            return f"key-{name}"
        if kind in ("AWS::EC2::VPC",):
            return f"vpc-{logical.lower()}"
        if kind in ("AWS::EC2::Subnet",):
            return f"subnet-{logical.lower()}"
        if kind in ("AWS::EC2::SecurityGroup",):
            return f"sg-{logical.lower()}"
        if kind in ("AWS::IAM::ManagedPolicy",):
            return f"arn:{PARTITION}:iam::{self.account}:policy/{name}"
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return self.get_att(logical, "Arn")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
        return name

    def get_att(self, logical: str, attribute: str) -> str:
        kind = self.resources[logical]["Type"]
        name = self.name(logical)

        def _arn(service: str, resource: str) -> str:
            return f"arn:{PARTITION}:{service}:{self.region}:{self.account}:{resource}"

        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::KMS::Key": _arn("kms", f"key/key-{name}"),
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{self.account}:role/{name}",
            "AWS::SQS::Queue": _arn("sqs", name),
            "AWS::SNS::Topic": _arn("sns", name),
            "AWS::Logs::LogGroup": _arn("logs", f"log-group:{name}:*"),
            "AWS::Lambda::Function": _arn("lambda", f"function:{name}"),
            "AWS::CodeBuild::Project": _arn("codebuild", f"project/{name}"),
            "AWS::StepFunctions::StateMachine": _arn("states", f"stateMachine:{name}"),
            "AWS::SageMaker::Endpoint": _arn("sagemaker", f"endpoint/{name.lower()}"),
            "AWS::SecretsManager::Secret": _arn("secretsmanager", f"secret:{name}-AbCdEf"),
            "AWS::CloudWatch::Alarm": _arn("cloudwatch", f"alarm:{name}"),
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if kind == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return self.ref(logical)
        if kind == "AWS::EC2::VPC" and attribute in ("VpcId",):
            return self.ref(logical)
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if kind == "AWS::StepFunctions::StateMachine" and attribute == "Name":
            return name
        if kind == "AWS::SageMaker::Endpoint" and attribute == "EndpointName":
            return name
        raise UnresolvedIntrinsicError(f"Fn::GetAtt {logical}.{attribute} ({kind}) is not modelled")

    def output(self, stack: str, output: str) -> Any:
        other = self.for_stack(stack)
        return other.resolve(other.template["Outputs"][output]["Value"])

    def export(self, name: str) -> Any:
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                export = output.get("Export", {}).get("Name")
                if export is not None and self.for_stack(stack).resolve(export) == name:
                    return self.for_stack(stack).resolve(output["Value"])
        raise UnresolvedIntrinsicError(f"no stack exports {name}")

    # -- the walk --------------------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {k: self.resolve(v) for k, v in value.items()}
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attribute)
        if fn == "Fn::Join":
            sep, parts = arg
            return str(sep).join(str(self.resolve(p)) for p in self.resolve(parts))
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), variables), text)
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn == "Fn::GetAZs":
            return [f"{self.region}{z}" for z in "abc"]
        if fn == "Fn::FindInMap":
            mapping, first, second = (self.resolve(a) for a in arg)
            return self.template["Mappings"][mapping][first][second]
        if fn == "Fn::GetStackOutput":
            return self.output(self.resolve(arg["StackName"]), arg["OutputName"])
        if fn == "Fn::ImportValue":
            return self.export(self.resolve(arg))
        raise UnresolvedIntrinsicError(f"{fn} is not modelled: {value}")

    def _sub(self, name: str, variables: Mapping[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical, attribute = name.split(".", 1)
            return self.get_att(logical, attribute)
        return self.ref(name)
