"""Where the promotion pipeline gets its source, and the permission its source action needs to use it."""

from __future__ import annotations

from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from constructs import Construct
from settings.stages import SourceConfig


def pipeline_source(scope: Construct, source: SourceConfig) -> pipelines.CodePipelineSource:
    """The configured repository: a CodeCommit repository, or a CodeStar/CodeConnections connection."""
    if source.provider == "codecommit":
        repository = codecommit.Repository.from_repository_name(scope, "Repository", source.repository)
        return pipelines.CodePipelineSource.code_commit(repository, source.branch)
    return pipelines.CodePipelineSource.connection(
        source.repository, source.branch, connection_arn=str(source.connection_arn)
    )


def grant_use_connection(pipelines_pipeline: pipelines.CodePipeline, source: SourceConfig) -> None:
    """CDK Pipelines grants ``codestar-connections:UseConnection``; IAM matches an action's service prefix with the
    connection ARN's, so a ``codeconnections`` connection (the prefix since the rename) needs its own action."""
    if source.provider != "connection":
        return
    service = str(source.connection_arn).split(":")[2]
    (role,) = [
        r for r in pipelines_pipeline.pipeline.node.find_all() if isinstance(r, iam.Role) and "/Source/" in r.node.path
    ]
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=[f"{service}:UseConnection"], resources=[str(source.connection_arn)])
    )
