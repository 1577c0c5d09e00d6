"""The promotion pipeline, built ONCE per session from the shipped stages.example.yaml through app.build_app.

Asserts on the synthesized CodePipeline (stage order, approval, smoke tests), on each stage's nested cloud
assembly (per-stage settings, accounts, the smoke-test role) and on the cross-account artifact encryption.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from settings.stages import StagesConfig, load_stages
from stacks.pipeline_stack import PIPELINE_STACK_NAME, pinned_node_tool
from tests.conftest import PIPELINE_STAGE_FILE, AppAssembly

ROOT = Path(__file__).resolve().parent.parent
STAGE_FILE = PIPELINE_STAGE_FILE
PIPELINE_ACCOUNT = "111111111111"


@pytest.fixture(scope="session")
def stages() -> StagesConfig:
    return load_stages(STAGE_FILE, base_dir=ROOT)


@pytest.fixture(scope="session")
def pipeline_json(pipeline_assembly: AppAssembly) -> dict[str, Any]:
    return pipeline_assembly.template_json(PIPELINE_STACK_NAME)


@pytest.fixture(scope="session")
def pipeline_stages(pipeline_json: dict[str, Any]) -> list[dict[str, Any]]:
    (pipeline,) = _of_type(pipeline_json, "AWS::CodePipeline::Pipeline").values()
    stages: list[dict[str, Any]] = pipeline["Properties"]["Stages"]
    return stages


def _of_type(template: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _stage(stages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = next(s for s in stages if s["Name"] == name)["Actions"]
    return actions


def _category(action: Mapping[str, Any]) -> str:
    return str(action["ActionTypeId"]["Category"])


def _resource(template: Mapping[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = _of_type(template, kind).values()
    props: dict[str, Any] = resource["Properties"]
    return props


# --- the pipeline's shape ------------------------------------------------------------------------------------


def test_stages_deploy_in_the_order_of_the_stage_file(
    pipeline_stages: list[dict[str, Any]], stages: StagesConfig
) -> None:
    names = [s["Name"] for s in pipeline_stages]
    order = [s.name for s in stages.stages]
    assert names[: -len(order)] in (  # Assets: CDK publishes file assets (Lambda code) before any stage
        ["Source", "Build", "UpdatePipeline"],
        ["Source", "Build", "UpdatePipeline", "Assets"],
    )
    assert names[-len(order) :] == order


def test_a_manual_approval_comes_before_prod_and_only_prod(pipeline_stages: list[dict[str, Any]]) -> None:
    prod = _stage(pipeline_stages, "prod")
    approvals = [a for a in prod if _category(a) == "Approval"]
    assert len(approvals) == 1
    assert approvals[0]["ActionTypeId"]["Provider"] == "Manual"
    first_deploy = min(a["RunOrder"] for a in prod if _category(a) == "Deploy")
    assert approvals[0]["RunOrder"] < first_deploy
    for name in ("dev", "staging"):
        assert not [a for a in _stage(pipeline_stages, name) if _category(a) == "Approval"]


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_a_smoke_test_follows_every_stage_deploy_and_reads_the_stage_outputs(
    pipeline_stages: list[dict[str, Any]], pipeline_json: dict[str, Any], stages: StagesConfig, name: str
) -> None:
    actions = _stage(pipeline_stages, name)
    (smoke,) = [a for a in actions if a["Name"] == f"SmokeTest-{name}"]
    assert _category(smoke) == "Build"
    assert smoke["RunOrder"] > max(a["RunOrder"] for a in actions if _category(a) == "Deploy")
    env = {v["name"]: v["value"] for v in json.loads(smoke["Configuration"]["EnvironmentVariables"])}
    stage = stages.stage(name)
    expected = {"SMOKE_ROLE_ARN", *(f"ENDPOINT_{s.upper()}" for s in stage.scenarios)}
    assert expected <= set(env)
    # Each endpoint variable is the output of that stage's endpoint stack, resolved when the stage has deployed.
    for scenario in stage.scenarios:
        assert env[f"ENDPOINT_{scenario.upper()}"].startswith(f"#{{LlamaPipelineStack{name}Llama")
        assert env[f"ENDPOINT_{scenario.upper()}"].endswith(".EndpointName}")
    project = pipeline_json["Resources"][smoke["Configuration"]["ProjectName"]["Ref"]]
    commands = json.loads(project["Properties"]["Source"]["BuildSpec"])["phases"]["build"]["commands"]
    assert any(
        c.startswith(f"python3 -m benchmark.aws.smoke --region {stage.region} --role-arn")
        and c.count("--endpoint-name") == len(stage.scenarios)
        for c in commands
    )


def test_the_synth_step_runs_the_tests_and_nag_then_synthesizes_with_the_stage_file(
    pipeline_stages: list[dict[str, Any]], pipeline_json: dict[str, Any]
) -> None:
    (synth,) = _stage(pipeline_stages, "Build")
    project = pipeline_json["Resources"][synth["Configuration"]["ProjectName"]["Ref"]]
    commands = json.loads(project["Properties"]["Source"]["BuildSpec"])["phases"]["build"]["commands"]
    assert commands[0] == "scripts/test"
    assert commands[-1].endswith(f"cdk synth --quiet -c stages={STAGE_FILE}")
    (mutate,) = _stage(pipeline_stages, "UpdatePipeline")
    assert mutate["Name"] == "SelfMutate"


def _install_commands(template: Mapping[str, Any]) -> list[str]:
    """Every npm/pip install any CodeBuild project of the pipeline runs, from its buildspec."""
    commands: list[str] = []
    for project in _of_type(template, "AWS::CodeBuild::Project").values():
        spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
        for phase in spec.get("phases", {}).values():
            commands += [c for c in phase.get("commands", []) if "install" in c]
    return commands


def test_every_node_tool_the_pipeline_installs_is_the_version_package_lock_resolves(
    pipeline_json: dict[str, Any],
) -> None:
    # package-lock.json is what `npm ci` installs for developers (scripts/setup); the pipeline must match it.
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    installs = [c for c in _install_commands(pipeline_json) if c.startswith("npm install")]
    tools = {"aws-cdk", "cdk-assets"}
    seen = set()
    for command in installs:
        for arg in command.split()[3:]:
            name, _, version = arg.rpartition("@")
            assert name in tools, f"unexpected global npm install in the pipeline: {command}"
            assert version == lock[f"node_modules/{name}"]["version"], command
            seen.add(name)
    assert seen == tools, f"self-mutation and asset publishing both install a pinned tool: {installs}"
    assert not any("@latest" in c or c.endswith("aws-cdk@2") for c in installs)


def test_the_source_is_the_configured_connection(pipeline_stages: list[dict[str, Any]], stages: StagesConfig) -> None:
    (source,) = _stage(pipeline_stages, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == stages.pipeline.source.connection_arn
    assert source["Configuration"]["BranchName"] == "main"


# --- cross-account artifacts -----------------------------------------------------------------------------------


def test_artifacts_are_encrypted_with_a_rotated_key_the_stage_accounts_can_use(
    pipeline_assembly: AppAssembly, pipeline_json: dict[str, Any], stages: StagesConfig
) -> None:
    (key_id, key), *_ = _of_type(pipeline_json, "AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    buckets = _of_type(pipeline_json, "AWS::S3::Bucket")
    artifacts = next(b for k, b in buckets.items() if k.startswith("PipelineArtifactsBucket"))["Properties"]
    sse = artifacts["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
    assert artifacts["VersioningConfiguration"] == {"Status": "Enabled"}
    assert artifacts["LoggingConfiguration"]["LogFilePrefix"] == "artifacts/"
    # The key policy lets each stage account's bootstrap deploy role decrypt the artifacts. A stage in another
    # region reads from CDK's support bucket there, whose own rotated key admits that stage's deploy role.
    keys = {stages.pipeline.region: key}
    for region in {s.region for s in stages.stages} - {stages.pipeline.region}:
        support = pipeline_assembly.template_json(f"{PIPELINE_STACK_NAME}-support-{region}")
        (keys[region],) = _of_type(support, "AWS::KMS::Key").values()
    for stage in stages.stages:
        stage_key = keys[stage.region]["Properties"]
        assert stage_key["EnableKeyRotation"] is True
        decrypt = json.dumps([s for s in stage_key["KeyPolicy"]["Statement"] if "kms:Decrypt" in s["Action"]])
        assert f":iam::{stage.account}:role/cdk-hnb659fds-deploy-role-{stage.account}-{stage.region}" in decrypt


def test_each_cross_region_replication_bucket_is_versioned_and_logs_to_a_bucket_in_its_region(
    pipeline_assembly: AppAssembly, stages: StagesConfig
) -> None:
    """CDK Pipelines makes the replication bucket of each other region in a support stack there; it gets the
    artifact bucket's versioning, expiry and server access logs, to a log bucket in the same support stack."""
    regions = {s.region for s in stages.stages} - {stages.pipeline.region}
    assert regions, "stages.example.yaml has a stage in another region: the support stack is tested here"
    for region in regions:
        support = pipeline_assembly.template_json(f"{PIPELINE_STACK_NAME}-support-{region}")
        buckets = _of_type(support, "AWS::S3::Bucket")
        (replica,) = [b["Properties"] for k, b in buckets.items() if k.startswith("CrossRegionCodePipelineReplication")]
        assert replica["VersioningConfiguration"] == {"Status": "Enabled"}
        logs = replica["LoggingConfiguration"]
        (target,) = [k for k in buckets if {"Ref": k} == logs["DestinationBucketName"]]
        log_bucket = buckets[target]["Properties"]
        assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ] == {"SSEAlgorithm": "AES256"}
        assert log_bucket["VersioningConfiguration"] == {"Status": "Enabled"}
        assert [r["Id"] for r in replica["LifecycleConfiguration"]["Rules"]] == ["ExpireOldArtifacts"]


def test_each_stage_deploys_through_its_own_accounts_bootstrap_roles(
    pipeline_stages: list[dict[str, Any]], stages: StagesConfig
) -> None:
    for stage in stages.stages:
        deploys = [a for a in _stage(pipeline_stages, stage.name) if _category(a) == "Deploy"]
        assert deploys
        for action in deploys:
            assert f"deploy-role-{stage.account}-{stage.region}" in json.dumps(action["RoleArn"])
            if "RoleArn" in action["Configuration"]:  # the change-set step: CloudFormation's execution role
                assert f"cfn-exec-role-{stage.account}-{stage.region}" in json.dumps(action["Configuration"]["RoleArn"])


# --- the stages' own stacks ------------------------------------------------------------------------------------


def test_stage_stacks_target_the_stage_account_and_region(pipeline_assembly: AppAssembly, stages: StagesConfig) -> None:
    for stage in stages.stages:
        for directory in pipeline_assembly.directory.glob(f"assembly-{PIPELINE_STACK_NAME}-{stage.name}"):
            manifest = json.loads((directory / "manifest.json").read_text())
            envs = {a["environment"] for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"}
            assert envs == {f"aws://{stage.account}/{stage.region}"}
        names = {n for n in pipeline_assembly.stacks if n.startswith(f"{stage.name}-")}
        expected = {
            "LlamaFoundationStack",
            "LlamaBenchmarkStack",
            "LlamaSmokeTestAccess",
            *(_stack_name(s) for s in stage.scenarios),
        }
        assert names == {f"{stage.name}-{n}" for n in expected}


def _stack_name(scenario: str) -> str:
    return f"Llama{scenario.capitalize()}Stack"


def test_per_stage_settings_reach_the_endpoint_templates(pipeline_assembly: AppAssembly) -> None:
    def variant(stack: str) -> dict[str, Any]:
        config = _resource(pipeline_assembly.template_json(stack), "AWS::SageMaker::EndpointConfig")
        result: dict[str, Any] = config["ProductionVariants"][0]
        return result

    def scaling(stack: str) -> tuple[int, int]:
        target = _resource(pipeline_assembly.template_json(stack), "AWS::ApplicationAutoScaling::ScalableTarget")
        return target["MinCapacity"], target["MaxCapacity"]

    assert variant("dev-LlamaCostStack")["InstanceType"] == "ml.g5.2xlarge"
    assert variant("staging-LlamaLatencyStack")["InstanceType"] == "ml.g5.12xlarge"
    assert variant("prod-LlamaLatencyStack")["InstanceType"] == "ml.p4d.24xlarge"
    assert variant("prod-LlamaThroughputStack")["InitialInstanceCount"] == 2
    assert scaling("dev-LlamaCostStack") == (1, 1)
    assert scaling("prod-LlamaLatencyStack") == (2, 4)
    assert scaling("prod-LlamaThroughputStack") == (2, 6)
    dev = Template.from_json(pipeline_assembly.template_json("dev-LlamaCostStack"))
    prod = Template.from_json(pipeline_assembly.template_json("prod-LlamaLatencyStack"))
    dev.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmName": Match.string_like_regexp("5xx"), "Threshold": 1}
    )
    prod.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmName": Match.string_like_regexp("5xx"), "Threshold": 0.5}
    )
    dev.has_resource_properties(
        "AWS::SageMaker::Model",
        {"PrimaryContainer": Match.object_like({"Environment": Match.object_like({"HF_MODEL_QUANTIZE": "gptq"})})},
    )


def test_the_benchmark_schedule_is_on_only_where_the_stage_file_says(
    pipeline_assembly: AppAssembly, stages: StagesConfig
) -> None:
    for stage in stages.stages:
        schedule = _resource(
            pipeline_assembly.template_json(f"{stage.name}-LlamaBenchmarkStack"), "AWS::Scheduler::Schedule"
        )
        assert schedule["State"] == ("ENABLED" if stage.benchmark_schedule else "DISABLED"), stage.name
    assert [s.benchmark_schedule for s in stages.stages] == [True, False, False]


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_the_smoke_test_role_only_invokes_the_stages_endpoints_for_the_pipelines_runner(
    pipeline_assembly: AppAssembly, pipeline_json: dict[str, Any], stages: StagesConfig, name: str
) -> None:
    stage = stages.stage(name)
    template = pipeline_assembly.template_json(f"{name}-LlamaSmokeTestAccess")
    role = _resource(template, "AWS::IAM::Role")
    assert role["RoleName"] == f"Llama2Promotion-{name}-smoke-test"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{PIPELINE_ACCOUNT}:root"}
    runner = trust["Condition"]["ArnEquals"]["aws:PrincipalArn"]["Fn::Join"][1]
    assert runner[-1] == f":iam::{PIPELINE_ACCOUNT}:role/Llama2Promotion-{name}-smoke-runner"
    (policy,) = _of_type(template, "AWS::IAM::ManagedPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert set(resources) == {
        f"arn:aws:sagemaker:{stage.region}:{stage.account}:endpoint/{d.endpoint_name}"
        for d in stage.deployments.values()
    }
    # In the pipeline account, the stage's runner may assume that role and no other.
    runner_policy = next(
        p["Properties"]
        for k, p in _of_type(pipeline_json, "AWS::IAM::Policy").items()
        if k.startswith(f"SmokeRunner{name}")
    )
    assume = [s for s in runner_policy["PolicyDocument"]["Statement"] if s["Action"] == "sts:AssumeRole"]
    assert len(assume) == 1
    assert json.dumps(assume[0]["Resource"]).count(":role/") == 1
    assert f":iam::{stage.account}:role/Llama2Promotion-{name}-smoke-test" in json.dumps(assume[0]["Resource"])


# --- compliance, and the app without stages --------------------------------------------------------------------


def test_nag_clean_for_the_pipeline_and_every_stage_stack(pipeline_assembly: AppAssembly) -> None:
    report = pipeline_assembly.directory / "validation-report.json"
    findings = json.loads(report.read_text())["pluginReports"] if report.exists() else []
    assert pipeline_assembly.validation_error is None, json.dumps(findings, indent=1)[:4000]
    assert findings == []
    # The stage stacks were part of that synth (the packs registered on the App reach stage stacks).
    assert {f"{s}-LlamaFoundationStack" for s in ("dev", "staging", "prod")} <= set(pipeline_assembly.stacks)


def test_without_stages_the_app_builds_no_pipeline_and_needs_no_account(app_assembly: AppAssembly) -> None:
    assert PIPELINE_STACK_NAME not in app_assembly.stacks
    assert not any(name.startswith(("dev-", "prod-")) for name in app_assembly.stacks)


def test_a_node_tool_without_an_exact_pin_stops_synth_naming_it(tmp_path: Path) -> None:
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"devDependencies": {"aws-cdk": "^2.1148.1"}}))
    with pytest.raises(ValueError, match=r"must pin aws-cdk to an exact version.*'\^2\.1148\.1'"):
        pinned_node_tool("aws-cdk", package_json=package)
    with pytest.raises(ValueError, match=r"must pin cdk-assets.*None"):
        pinned_node_tool("cdk-assets", package_json=package)
