"""The scenario stacks served by vLLM, as synthesized from config.vllm.example.yaml (one app per session).

Oracles this project did not write: the vLLM container's documented ``SM_VLLM_*`` contract (written out below),
the SageMaker SDK's vLLM image table (read here from its vendored copy, which ``tests/test_images.py`` holds to
the SDK's), SageMaker's own list of host AMIs (botocore), cdk-nag, cfn-lint and the IAM evaluator. And one twin:
the same file served by TGI (``-c engine=tgi``), which the vLLM app must equal wherever the engine plays no part,
so that every security property, alarm, dashboard widget and scaling policy is checked the same way for both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk.assertions import Template
from botocore.model import StructureShape
from cfnlint.api import lint

from app import build_app
from catalog import ServingLimits, engine_environment, get_instance, get_model, get_quantization
from catalog.errors import ConfigError
from scripts.compare_templates import differences
from settings import STACK_NAMES, DeploymentConfig, load_settings
from settings.sagemaker_requests import endpoint_config_request
from stacks.endpoint_stack import LlamaEndpointStack
from tests.conftest import VLLM_CONTEXT
from tests.fixtures_endpoint import only, resources
from tests.iam.account import Account, Role
from tests.iam.calls import Call, hosting_of_endpoint_stack, sagemaker_hosting_calls
from tests.iam.usage import unused_grants
from tests.test_compliance import LINT_REGIONS, _acknowledgments, _violations
from tests.test_endpoint_constructs import model_props, stand_in_foundation, variant
from tests.test_sagemaker_requests import _key_paths, _model

if TYPE_CHECKING:
    from tests.conftest import AppAssembly

ROOT = Path(__file__).resolve().parents[1]
VLLM_TABLE: dict[str, Any] = json.loads((ROOT / "catalog" / "data" / "vllm_images.json").read_text())
VERSION = "0.29.0"  # the default vllm_version (catalog.images), the newest image in sagemaker-core 2.27.0
IMAGE = VLLM_TABLE["versions"][VERSION]
HOST_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"

# config.vllm.example.yaml, per scenario: model, then quantization and instance from README's scenario table, the
# instance's GPUs from the AWS instance pages, and the endpoint-config timeouts of README's configuration table.
SCENARIO_ROWS = {
    "cost": ("13b", "gptq", "ml.g5.2xlarge", "1", 1200),
    "latency": ("70b", "fp16", "ml.p4d.24xlarge", "8", 2400),
    "throughput": ("7b", "fp16", "ml.g5.12xlarge", "4", 900),
}
SCENARIOS = tuple(SCENARIO_ROWS)


def documented_environment(quantization: str, gpus: str) -> dict[str, str]:
    """The vLLM image's SageMaker contract with this project's deployment defaults, written out: the entrypoint
    passes SM_VLLM_<NAME>=<value> as `--<name> <value>` (aws/deep-learning-containers docs/vllm/configuration.md,
    "SM_VLLM_MAX_MODEL_LEN=4096 -> --max-model-len 4096"); the model from /opt/ml/model, where SageMaker mounts the
    S3 prefix (docs/vllm/deployment/sagemaker.md, "Model Artifacts")."""
    env = {
        "SM_VLLM_MODEL": "/opt/ml/model",  # --model: the weights SageMaker staged, never a Hub id
        "SM_VLLM_SERVED_MODEL_NAME": "llama-2",  # --served-model-name: the `model` every request carries
        "SM_VLLM_TENSOR_PARALLEL_SIZE": gpus,  # --tensor-parallel-size: every GPU of the instance
        "SM_VLLM_MAX_MODEL_LEN": "4096",  # --max-model-len: max_total_tokens
        "SM_VLLM_MAX_NUM_SEQS": "128",  # --max-num-seqs: max_concurrent_requests
        "SM_VLLM_MAX_NUM_BATCHED_TOKENS": "4096",  # --max-num-batched-tokens: max_batch_prefill_tokens
        "SM_VLLM_GPU_MEMORY_UTILIZATION": "0.9",  # --gpu-memory-utilization: vLLM's own default, written out
        "SM_VLLM_DTYPE": "float16",  # --dtype: Llama 2's, and the only one vLLM's GPTQ kernels take
        "SM_VLLM_HOST": "0.0.0.0",  # --host: every interface, where SageMaker calls port 8080
    }
    if quantization == "gptq":
        env["SM_VLLM_QUANTIZATION"] = "gptq"  # --quantization gptq: vLLM's GPTQ support (Ampere: g5, p4d)
    return env


def stack_of(assembly: AppAssembly, scenario: str) -> dict[str, Any]:
    return assembly.template_json(STACK_NAMES[scenario])


def ecr_domain(region: str) -> str:
    """The ECR domain by partition, as AWS documents it (China regions: amazonaws.com.cn)."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def resolve(value: Any, template: dict[str, Any], region: str) -> Any:
    """The intrinsics an image URI or repository ARN uses, evaluated for one region."""
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join":
            return arg[0].join(str(resolve(part, template, region)) for part in arg[1])
        if fn == "Fn::FindInMap":
            name, key, attribute = (resolve(part, template, region) for part in arg)
            return template["Mappings"][name][key][attribute]
        if fn == "Ref":
            partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if "-gov-" in region else "aws"
            return {"AWS::Region": region, "AWS::URLSuffix": ecr_domain(region), "AWS::Partition": partition}[arg]
    return value


# --- the container -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_environment_is_the_documented_contract_field_by_field(vllm_assembly: AppAssembly, scenario: str) -> None:
    model, quantization, instance, gpus, _ = SCENARIO_ROWS[scenario]
    env = model_props(stack_of(vllm_assembly, scenario))["PrimaryContainer"]["Environment"]
    documented = documented_environment(quantization, gpus)
    assert sorted(env) == sorted(documented)
    for name, value in documented.items():
        assert env[name] == value, name
    # The one builder, asked from the catalog directly rather than through DeploymentConfig.
    served = ServingLimits(
        model=get_model(model), quantization=get_quantization(quantization), instance=get_instance(instance)
    )
    assert env == engine_environment("vllm", served)
    assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_MODEL_ID"} & set(env), "no Hub id or token at run time"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_weights_are_the_staged_prefix_under_network_isolation(vllm_assembly: AppAssembly, scenario: str) -> None:
    model, quantization, instance, _, timeout = SCENARIO_ROWS[scenario]
    t = stack_of(vllm_assembly, scenario)
    props = model_props(t)
    assert props["EnableNetworkIsolation"] is True
    source = props["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
    assert (source["S3DataType"], source["CompressionType"]) == ("S3Prefix", "None")
    assert source["S3Uri"]["Fn::Join"][1][-1] == f"/models/llama-2-{model}-{quantization}/"  # TGI's prefix too
    v = variant(t)
    assert (v["InstanceType"], v["ContainerStartupHealthCheckTimeoutInSeconds"]) == (instance, timeout)
    assert v["ModelDataDownloadTimeoutInSeconds"] == timeout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_host_is_the_ami_sagemaker_lists_for_the_images_cuda(vllm_assembly: AppAssembly, scenario: str) -> None:
    """The AWS vLLM container docs: "GPU deployments require inference_ami_version — the default SageMaker host AMI
    has incompatible NVIDIA drivers for CUDA 12.9 images"; the image is built on CUDA 13.0 (its tag)."""
    assert "-cu130-" in IMAGE["tag"]
    assert variant(stack_of(vllm_assembly, scenario))["InferenceAmiVersion"] == HOST_AMI
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariant")
    assert isinstance(shape, StructureShape)
    doc = shape.members["InferenceAmiVersion"].documentation
    (entry,) = re.findall(rf"<dt>{HOST_AMI}</dt>\s*<dd>(.*?)</dd>", doc)
    assert "CUDA version: 13.0" in entry


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_request_key_reaches_the_template(vllm_assembly: AppAssembly, scenario: str) -> None:
    """The one request builder for vLLM, as for TGI (tests/test_sagemaker_requests.py): nothing dropped."""
    deployment = load_settings(VLLM_CONTEXT, base_dir=ROOT).deployments[scenario]
    assert deployment.engine == "vllm" and deployment.vllm_version == VERSION
    t = stack_of(vllm_assembly, scenario)
    cfn_config = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
    assert _key_paths(model_props(t)) == _key_paths(_model(deployment))
    assert _key_paths(cfn_config) == _key_paths(endpoint_config_request(deployment, model_name="m"))
    assert ".ProductionVariants[].InferenceAmiVersion" in _key_paths(cfn_config)
    assert model_props(t)["PrimaryContainer"]["Environment"] == deployment.container_environment()


# --- the image ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_image_uri_in_every_region_is_the_tables(vllm_assembly: AppAssembly, scenario: str) -> None:
    t = stack_of(vllm_assembly, scenario)
    uri = model_props(t)["PrimaryContainer"]["Image"]
    policy = only(t, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]["Statement"]
    (pull,) = [s["Resource"] for s in policy if s["Sid"] == "PullImage"]
    regions = IMAGE["registries"]
    assert len(regions) >= 30
    for region, account in regions.items():
        repository = f"{account}.dkr.ecr.{region}.{ecr_domain(region)}/{IMAGE['repository']}"
        assert resolve(uri, t, region) == f"{repository}:{IMAGE['tag']}", region
        partition = resolve({"Ref": "AWS::Partition"}, t, region)
        arn = f"arn:{partition}:ecr:{region}:{account}:repository/{IMAGE['repository']}"
        assert resolve(pull, t, region) == arn, region
    ((_, mapping),) = t["Mappings"].items()
    assert set(mapping) == set(regions), "no region without the vLLM image, such as me-west-1 (TGI has it)"
    (rule,) = [r for name, r in t["Rules"].items() if name.startswith("ImageRegionHasImage")]
    assert rule["Assertions"][0]["Assert"]["Fn::Contains"][0] == sorted(regions)
    assert rule["Assertions"][0]["AssertDescription"].startswith(f"vLLM {VERSION} has no SageMaker image")


def test_a_concrete_region_gets_the_tables_literal_uri_and_arn() -> None:
    app = cdk.App()
    deployment = DeploymentConfig(scenario="latency", engine="vllm", region="eu-west-1")
    shared = stand_in_foundation(app, "Base", cdk.Environment(region="eu-west-1"))
    stack = LlamaEndpointStack(
        app, "Vllm", deployment=deployment, shared=shared, env=cdk.Environment(region="eu-west-1")
    )
    t = Template.from_stack(stack).to_json()
    account = IMAGE["registries"]["eu-west-1"]
    assert model_props(t)["PrimaryContainer"]["Image"] == (
        f"{account}.dkr.ecr.eu-west-1.amazonaws.com/huggingface-vllm:{IMAGE['tag']}"
    )
    policy = only(t, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]["Statement"]
    (pull,) = [s["Resource"] for s in policy if s["Sid"] == "PullImage"]
    assert pull == f"arn:aws:ecr:eu-west-1:{account}:repository/huggingface-vllm"
    assert "Mappings" not in t


# --- everything else is the TGI twin's ------------------------------------------------------------------------

# Where a vLLM stack may differ from the same deployment on TGI: the engine's container (environment, image), the
# host AMI its image needs, the repository its role pulls from, the regions with its image, and the description.
ENGINE_PATHS = {
    "environment": re.compile(r"^\$\.Resources\.TgiModel[0-9A-F]{8}\.Properties\.PrimaryContainer\.Environment\."),
    "image": re.compile(r"^\$\.Resources\.TgiModel[0-9A-F]{8}\.Properties\.PrimaryContainer\.Image\."),
    "host": re.compile(
        r"^\$\.Resources\.TgiConfig[0-9A-F]{8}\.Properties\.ProductionVariants\[0\]\.InferenceAmiVersion: added$"
    ),
    "pull": re.compile(r"^\$\.Resources\.ExecutionRolePolicy[0-9A-F]{8}\.Properties\.PolicyDocument\.Statement\[3\]\."),
    "regions": re.compile(r"^\$\.Mappings\.ImageRegistries[0-9A-F]{8}\.me-west-1: removed$"),
    "rule": re.compile(r"^\$\.Rules\.ImageRegionHasImage[0-9A-F]{8}\.Assertions\[0\]\."),
    "description": re.compile(r"^\$\.Description: "),
    # The dashboard's body (one string): the metric widgets equal, one widget of vLLM's log lines added, as
    # test_the_dashboard_reads_the_same_metrics_and_names_the_engine_of_its_log_widget checks widget by widget.
    "dashboard": re.compile(r"^\$\.Resources\.MonitoringDashboard[0-9A-F]{8}\.Properties\.DashboardBody\."),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_only_the_engine_differs_from_the_tgi_twin(
    vllm_assembly: AppAssembly, vllm_twin_assembly: AppAssembly, scenario: str
) -> None:
    """Network isolation, KMS on the log group and topic, the execution role (but for the repository), the alarms,
    the dashboard, the ConcurrentRequestsPerModel target tracking and blue/green: the same resources, logical ids
    and properties for both engines."""
    tgi, vllm = stack_of(vllm_twin_assembly, scenario), stack_of(vllm_assembly, scenario)
    found = differences(tgi, vllm)
    kinds = {name for line in found for name, pattern in ENGINE_PATHS.items() if pattern.match(line)}
    unexplained = [line for line in found if not any(p.match(line) for p in ENGINE_PATHS.values())]
    assert not unexplained, "\n".join(unexplained)
    assert kinds == set(ENGINE_PATHS), f"expected every engine difference, found only {sorted(kinds)}"
    statements = only(vllm, "AWS::IAM::ManagedPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statements[3]["Sid"] == "PullImage"
    assert "with vLLM 0.29.0" in vllm["Description"] and "vLLM" not in tgi["Description"]


def test_the_dashboard_alarms_and_scaling_are_there_for_vllm(vllm_assembly: AppAssembly) -> None:
    """The twin test says they equal TGI's; this says that the comparison did not pass on two empty stacks."""
    t = stack_of(vllm_assembly, "latency")
    assert len(resources(t, "AWS::CloudWatch::Alarm")) == 3
    tracking = only(t, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    body = json.dumps(only(t, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    assert "ConcurrentRequestsPerModel" in body and "GPUMemoryUtilization" in body


def dashboard_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's widgets, its body's intrinsics (the region) rendered as placeholders."""
    parts = only(template, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(p if isinstance(p, str) else "REGION" for p in parts)
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return widgets


# vLLM's log lines as vllm/logger.py formats them ("%(levelname)s %(asctime)s [%(fileinfo)s:%(lineno)d] %(message)s"),
# with the messages of vllm/v1/core/kv_cache_utils.py and vllm/entrypoints/openai/api_server.py; worker processes
# prefix theirs with the process name.
VLLM_LINES = [
    "INFO 12-07 08:01:02 [kv_cache_utils.py:1087] GPU KV cache size: 27,776 tokens",
    "INFO 12-07 08:01:02 [kv_cache_utils.py:1091] Maximum concurrency for 4,096 tokens per request: 6.78x",
    "INFO 12-07 08:01:40 [api_server.py:1848] Starting vLLM API server 0 on http://0.0.0.0:8080",
    "(EngineCore_DP0 pid=212) ERROR 12-07 08:01:05 [core.py:708] EngineCore failed to start.",
    "Traceback (most recent call last):",
]
NOT_VLLM_LINES = ["INFO 12-07 08:02:00 [loggers.py:123] Engine 000: Avg prompt throughput: 10.0 tokens/s"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_dashboard_reads_the_same_metrics_and_names_the_engine_of_its_log_widget(
    vllm_assembly: AppAssembly, vllm_twin_assembly: AppAssembly, scenario: str
) -> None:
    """Every metric widget (SageMaker's metrics, the same for both engines) is the TGI twin's; the one widget that
    reads container log lines is vLLM's, says so in its title, reads the endpoint's own log group and matches
    vLLM's start-up and error lines (Logs Insights ``like /a|b/`` is a regular expression, as Python's here)."""
    tgi, vllm = (
        dashboard_widgets(stack_of(vllm_twin_assembly, scenario)),
        dashboard_widgets(stack_of(vllm_assembly, scenario)),
    )
    assert all(w["type"] == "metric" for w in tgi)
    assert vllm[: len(tgi)] == tgi
    (log,) = vllm[len(tgi) :]
    props = log["properties"]
    assert log["type"] == "log" and props["title"].startswith(f"vLLM {VERSION} container log")
    endpoint = only(stack_of(vllm_assembly, scenario), "AWS::SageMaker::Endpoint")["Properties"]["EndpointName"]
    assert props["query"].startswith(f"SOURCE '/aws/sagemaker/Endpoints/{endpoint}' | ")
    (pattern,) = re.findall(r"filter @message like /(.*)/", props["query"])
    assert all(re.search(pattern, line) for line in VLLM_LINES), pattern
    assert not any(re.search(pattern, line) for line in NOT_VLLM_LINES)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_concurrent_requests_target_tracking_is_the_same_for_both_engines(
    vllm_assembly: AppAssembly, vllm_twin_assembly: AppAssembly, scenario: str
) -> None:
    tgi, vllm = stack_of(vllm_twin_assembly, scenario), stack_of(vllm_assembly, scenario)
    for kind in ("AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::ApplicationAutoScaling::ScalableTarget"):
        assert resources(vllm, kind) == resources(tgi, kind), kind
    tracking = only(vllm, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantConcurrentRequestsPerModelHighResolution"
    assert resources(vllm, "AWS::CloudWatch::Alarm") == resources(tgi, "AWS::CloudWatch::Alarm")


# --- compliance and permissions --------------------------------------------------------------------------------


def test_the_vllm_app_is_nag_clean_with_the_twins_acknowledgments(
    vllm_assembly: AppAssembly, vllm_twin_assembly: AppAssembly
) -> None:
    findings = list(_violations(vllm_assembly.validation_report()))
    assert vllm_assembly.validation_error is None and not findings, "\n".join(findings)

    def acknowledged(assembly: AppAssembly) -> set[tuple[str, str, str]]:
        return {(stack, path, rule) for stack, path, rule, _ in _acknowledgments(assembly)}

    assert acknowledged(vllm_assembly) == acknowledged(vllm_twin_assembly), "no acknowledgment of vLLM's own"


def test_cfn_lint_has_no_errors_or_warnings_on_the_vllm_stacks(vllm_assembly: AppAssembly) -> None:
    problems = []
    for name in (STACK_NAMES[s] for s in SCENARIOS):
        for match in lint(vllm_assembly.stacks[name].template_file.read_text(), regions=LINT_REGIONS):
            if not match.rule.id.startswith("I"):
                problems.append(f"{name}: {match.rule.id} line {match.linenumber}: {match.message}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def vllm_account(vllm_assembly: AppAssembly) -> Account:
    return Account({name: vllm_assembly.template_json(name) for name in vllm_assembly.stacks})


def test_the_execution_roles_allow_every_hosting_call_and_nothing_more(vllm_account: Account) -> None:
    roles: list[Role] = []
    calls: list[Call] = []
    for scenario in SCENARIOS:
        stack = STACK_NAMES[scenario]
        role = vllm_account.role(stack, "ExecutionRole")
        hosting = hosting_of_endpoint_stack(vllm_account, stack)
        assert hosting.repository == "huggingface-vllm"
        roles.append(role)
        calls += sagemaker_hosting_calls(f"{stack} endpoint", role, hosting)
    denied = [f"{c.component}: {c.action}: {d.reason}" for c in calls if not (d := c.evaluate(vllm_account)).allowed]
    assert not denied, "\n".join(denied)
    owners = {role.logical_id for role in roles}
    unused = [str(f) for f in unused_grants(vllm_account, roles, calls) if f.owner in owners]
    assert not unused, "\n".join(unused)


def test_a_vllm_role_cannot_pull_the_tgi_repository(vllm_account: Account) -> None:
    role = vllm_account.role(STACK_NAMES["latency"], "ExecutionRole")
    hosting = hosting_of_endpoint_stack(vllm_account, STACK_NAMES["latency"])
    tgi = DeploymentConfig(scenario="latency").image.repository
    pull = {"repository": {"RepositoryName": tgi, "Account": hosting.image_account}}
    assert not Call("near miss", role, "ecr:BatchGetImage", pull).evaluate(vllm_account).allowed
    own = {"repository": {"RepositoryName": hosting.repository, "Account": hosting.image_account}}
    assert Call("control", role, "ecr:BatchGetImage", own).evaluate(vllm_account).allowed


# --- what synth refuses --------------------------------------------------------------------------------------

# What the vLLM image cannot serve, each beside a control that TGI (or vLLM, set otherwise) does serve.
REFUSED = [
    # me-west-1 has TGI images but no vLLM image in the SDK's table.
    (
        "no-vllm-image-in-region",
        {"engine": "vllm", "region": "me-west-1"},
        "region",
        "me-west-1",
        f"has no vLLM {VERSION} image",
    ),
    # 7B fp16 (13.5 GB) on one 24 GB A10G at gpu_memory_utilization 0.5: vLLM leaves 9.9 GB.
    (
        "vllm-memory-rule",
        {"engine": "vllm", "gpu_memory_utilization": "0.5", "cost.quantization": "fp16"},
        "cost.instance_type",
        "ml.g5.2xlarge",
        "vLLM refuses to start when max_model_len is larger",
    ),
    (
        "tgi-setting-on-vllm",
        {"engine": "vllm", "max_batch_total_tokens": "16384"},
        "max_batch_total_tokens",
        16384,
        "is a TGI setting",
    ),
    (
        "vllm-batched-below-seqs",
        {"engine": "vllm", "max_batch_prefill_tokens": "2048", "max_concurrent_requests": "4000"},
        "max_batch_prefill_tokens",
        2048,
        "vLLM refuses max_num_batched_tokens below max_num_seqs",
    ),
    (
        "unknown-vllm-version",
        {"engine": "vllm", "vllm_version": "0.30"},
        "vllm_version",
        "0.30",
        "must be one of 0.14.0",
    ),
    ("vllm-version-on-tgi", {"engine": "tgi", "vllm_version": "0.29"}, "vllm_version", "0.29", "is a vLLM setting"),
    ("vllm-setting-on-tgi", {"gpu_memory_utilization": "0.8"}, "gpu_memory_utilization", 0.8, "is a vLLM setting"),
    ("unknown-engine", {"engine": "sglang"}, "engine", "sglang", "must be one of tgi, vllm"),
]
CONTROLS = [
    {"region": "me-west-1"},
    {"engine": "vllm", "gpu_memory_utilization": "0.85", "cost.quantization": "fp16"},
    {"max_batch_total_tokens": "16384"},
    {"max_batch_prefill_tokens": "2048", "max_concurrent_requests": "4000"},
    {"engine": "vllm", "vllm_version": "0.17"},
    {"engine": "vllm", "vllm_version": "0.29"},
    {"engine": "vllm", "gpu_memory_utilization": "0.8"},
    {"engine": "VLLM"},
]


@pytest.mark.parametrize(
    ("context", "field", "value", "allowed"), [r[1:] for r in REFUSED], ids=[str(r[0]) for r in REFUSED]
)
def test_synth_names_a_combination_the_image_cannot_serve(
    context: dict[str, str], field: str, value: object, allowed: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_app(context, outdir=str(tmp_path))
    issues = [i for i in caught.value.issues if i.field.endswith(field)]
    assert issues, caught.value
    assert any(i.value == value and allowed in i.allowed for i in issues), caught.value


@pytest.mark.parametrize("context", CONTROLS, ids=[str(r[0]) for r in REFUSED])
def test_the_controls_of_the_refusals_are_served(context: dict[str, str]) -> None:
    settings = load_settings(context)
    for deployment in settings.deployments.values():
        assert deployment.container_environment()


def test_the_cli_refuses_a_region_without_the_vllm_image_and_exits_2(tmp_path: Path) -> None:
    """As ``cdk synth -c engine=vllm -c region=me-west-1`` runs it: the CLI passes context by environment."""
    context = json.dumps({"engine": "vllm", "region": "me-west-1", "benchmark": "off"})
    env = {**os.environ, "CDK_CONTEXT_JSON": context, "CDK_OUTDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 2, run.stderr
    assert f"region='me-west-1': has no vLLM {VERSION} image" in run.stderr
    assert "Traceback" not in run.stderr


# --- what scripts/synth builds --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["7b", "13b", "70b"])
def test_scripts_synth_serves_each_size_on_vllm_in_fp16_and_gptq(model: str) -> None:
    """``scripts/synth`` runs ``-c engine=vllm -c model=<size>``: every scenario on vLLM, both quantizations."""
    deployments = load_settings({"engine": "vllm", "model": model}).deployments
    assert {d.engine for d in deployments.values()} == {"vllm"}
    assert {d.quantization for d in deployments.values()} == {"fp16", "gptq"}
    for d in deployments.values():
        gpus = str(d.instance.gpu_count)
        assert d.container_environment() == documented_environment(str(d.quantization), gpus)
        assert d.inference_ami_version == HOST_AMI
