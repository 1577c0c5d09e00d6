"""The benchmark state machine: one endpoint per configuration, every level on it, torn down on every path.

Per configuration (an item of the outer Map; its MaxConcurrency is the only bound on parallel endpoints and
load-test Lambdas, as reserved Lambda concurrency fails in new accounts):
CreateModel -> CreateEndpointConfig -> CreateEndpoint -> poll DescribeEndpoint (Wait/Choice, deadline); every
SageMaker call is retried on the names Step Functions gives throttling and other transient errors
(``SAGEMAKER_TRANSIENT_ERRORS``; right after CreateEndpointConfig, CreateEndpoint may not find the config yet)
-> RunLevels (inner Map, one level at a time, the load-test Lambda writes each record as it finishes; a level
whose expected token rate is more than one load-test Lambda drives fans out: ShardLevel, a Map of shards that
start together, then MergeShards, which writes the level's record from the union of their records)
-> wait while the endpoint is Creating/Updating (SageMaker refuses to delete it then; bounded)
-> DeleteEndpoint -> DeleteEndpointConfig -> DeleteModel. Every state that can fail has a Catch that
records the failure in the results bucket and joins the same teardown; each delete catches its own
failure ("not found" after a failed create) and moves on, so the Map item always completes.

An execution that ends ABORTED, TIMED_OUT or FAILED never reaches that teardown: every model, config and
endpoint carries the execution's tag (``EXECUTION_TAG``, the SHA-256 of the execution ARN), and the
stack's EventBridge rule sends the status change to the janitor, which deletes what carries it.

The matrices are resolved at synth time into Pass states (container settings from
``settings.sagemaker_requests``, the same source as the endpoint stacks); an execution names one with
``{"matrix": "<name>"}``, so an execution input cannot change images, roles or networking.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from benchmark.aws.contract import (
    BENCHMARK_TAG,
    BUSY_STATUSES,
    EXECUTION_TAG,
    ITEM_LOAD,
    ITEM_SHARDS,
    MAX_SHARDS,
    NAME_PREFIX,
    OUTCOME_FAILED,
    OUTCOME_SUCCEEDED,
    RESULTS_PREFIX,
    RUN_TAG,
    SHARD_LEAD_S,
    TTL_TAG,
    AggregateEvent,
    ConfigurationOutcome,
    EndpointConfiguration,
    LevelEvent,
    LoadTestSizing,
    MergeEvent,
    ShardEvent,
    configuration_data,
    failures_prefix,
    level_items,
    payload,
    required_fields,
    selector,
    shared_load,
)
from benchmark.matrix import Matrix
from catalog.deployment import DeploymentConfig
from catalog.errors import ConfigError, Issue
from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import (
    acknowledge_own_inline_policy,
    acknowledge_results_objects,
    arn_ref,
    sagemaker_arn_prefix,
)
from llama_constructs.endpoint.container_image import ImageLocation
from settings.sagemaker_requests import isolated_hosting, model_data_uri, primary_container, production_variant
from settings.subnets import selection_kwargs

# How Step Functions names the errors of these ``aws-sdk:sagemaker`` tasks (AWS SDK integration, not the
# optimized one). The developer guide: "ServiceName.ErrorName", both in PascalCase, with the "Exception" suffix
# (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html), so a modeled error is
# e.g. "SageMaker.ResourceLimitExceededException". SageMaker's service model declares only ConflictException,
# ResourceAlreadyExists, ResourceInUse, ResourceLimitExceeded and ResourceNotFound (botocore's
# sagemaker/2017-07-24/service-2.json; the SDK for Kotlin's SageMakerException lists the same subclasses,
# https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/sagemaker/aws.sdk.kotlin.services.sagemaker.model/-sage-maker-exception).
# Throttling ("ThrottlingException", https://repost.aws/knowledge-center/sagemaker-python-throttlingexception),
# ValidationException and the 5xx errors are not modeled, and an unmodeled error of an AWS SDK task is named after
# the SDK's base exception, "<Service>.<Service>Exception": LocalStack's parity snapshots recorded against AWS show
# "SecretsManager.SecretsManagerException" and "DynamoDb.DynamoDbException" for unmodeled validation errors
# (localstack/localstack tests/aws/services/stepfunctions/v2/error_handling/test_aws_sdk.snapshot.json), and moto's
# port of that interpreter names them the same way, with the service in lower case ("sagemaker.sagemakerException";
# tests/sfn_local.py corrects the case only). So a throttled SageMaker call is "SageMaker.SageMakerException".
# The developer guide's rule read literally (the error code SageMaker returns, "ThrottlingException", after the
# service name) gives "SageMaker.ThrottlingException": no recording shows it for an unmodeled error, but nothing
# rules it out either, so it is retried too (a name that never comes costs nothing; a missing one loses a run).
# "SageMaker.AmazonSageMakerException" is the optimized integration's name (Java SDK v1 class), not this one's.
SAGEMAKER_UNMODELED_ERROR = "SageMaker.SageMakerException"
# The SDK's client-side failure ("Unable to execute HTTP request": LocalStack's recorded SQS snapshot names it
# "SQS.SdkClientException"): a connection problem, transient.
SAGEMAKER_CLIENT_ERROR = "SageMaker.SdkClientException"
SAGEMAKER_THROTTLING_BY_CODE = "SageMaker.ThrottlingException"
# What every SageMaker task retries. The unmodeled name also covers a permanent ValidationException (a bad
# request, or "not found" on a delete after a failed create): Step Functions cannot tell them apart, so the
# retries stay short (waits 5, 10, 20 s) and the Catch records the failure afterwards. CreateEndpoint right after
# CreateEndpointConfig can fail with a ValidationException ("Could not find endpoint configuration") while the
# config propagates; the API reference advises retrying it, and this retrier does. Modeled errors
# (ResourceLimitExceeded: a quota) are not transient: caught at once.
SAGEMAKER_TRANSIENT_ERRORS = (SAGEMAKER_UNMODELED_ERROR, SAGEMAKER_THROTTLING_BY_CODE, SAGEMAKER_CLIENT_ERROR)
SAGEMAKER_RETRY = {"interval_s": 5, "max_attempts": 3, "backoff_rate": 2.0}  # waits 5, 10, 20 s
_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,15}$")


@dataclass(frozen=True, kw_only=True)
class BenchmarkStateMachineProps:
    matrices: Mapping[str, Matrix]
    key: kms.IKey
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    endpoint_security_group: ec2.ISecurityGroup
    weights_bucket: s3.IBucket
    results_bucket: s3.IBucket
    execution_role: iam.IRole  # passed to SageMaker for the benchmark models
    load_test_function: lambda_.IFunction
    load_test_sizing: LoadTestSizing  # the function's size: how many of it each level needs (its shards)
    aggregate_function: lambda_.IFunction
    topic: sns.ITopic
    max_parallel_endpoints: int = 1
    prefix: str = NAME_PREFIX
    poll_interval: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(30))
    max_polls: int = 120  # with 30 s polls: one hour, above the 70B startup timeout of 40 minutes
    # SageMaker refuses to delete an endpoint while it is Creating or Updating, and one stuck in Creating
    # turns Failed only after up to an hour: teardown waits this many polls before deleting anyway.
    max_teardown_polls: int = 150
    endpoint_ttl_hours: int = 6  # the janitor deletes tagged endpoints older than this
    slo: str | None = None  # validated in settings (benchmark.slo); the aggregate step then compares capacity too
    timeout: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(36))

    def __post_init__(self) -> None:
        if not self.matrices:
            raise ValueError("at least one matrix is needed")
        if not _PREFIX.match(self.prefix):
            raise ValueError("prefix must be 2-16 lowercase letters and digits, starting with a letter")
        if not 1 <= self.max_parallel_endpoints <= 40:
            raise ValueError("max_parallel_endpoints must be 1..40")
        if self.max_polls < 1 or self.max_teardown_polls < 1 or self.endpoint_ttl_hours < 1:
            raise ValueError("max_polls, max_teardown_polls and endpoint_ttl_hours must be at least 1")
        for name in self.matrices:
            if not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise ValueError(f"matrix name {name!r}: letters, digits, '-' and '_' only")


def image_key(deployment: DeploymentConfig) -> tuple[str, str]:
    """(engine, image version): what one image location serves."""
    return deployment.engine, deployment.engine_version


def image_construct_id(deployment: DeploymentConfig) -> str:
    """``Image336`` for TGI 3.3.6 (the id TGI images have always had), ``VllmImage0290`` for vLLM 0.29.0."""
    engine, version = image_key(deployment)
    prefix = "" if engine == "tgi" else engine.capitalize()
    return f"{prefix}Image{version.replace('.', '')}"


# Each level's load: the matrix's shared load with the RunLevels item's own fields (its concurrency) over it.
LEVEL_LOAD = f"States.JsonMerge($.load, $$.Map.Item.Value.{ITEM_LOAD}, false)"


def matrix_items(matrix: Matrix, *, image_for: Any, weights_bucket_name: str, sizing: LoadTestSizing) -> dict[str, Any]:
    """The Pass-state payload for one matrix: configurations with their SageMaker request fragments, the levels
    and the load they share, all in the contract's types (``benchmark.aws.contract``); each level with the shards
    ``sizing`` says it needs. An open-loop matrix cannot fan out (its arrival schedule is one process's).

    ``image_for(deployment)`` is the URI of the deployment's image (its engine's, at its engine version); the
    container's environment is its engine's (``DeploymentConfig.container_environment``), and the load test is
    told the engine's payload (``Engine.default_payload``): all as the endpoint stacks deploy it.
    """
    if matrix.load.open_loop:
        too_large = [level for level in matrix.levels if sizing.shards(level, open_loop=True) > 1]
        if too_large:
            reason = f"need more than one load-test Lambda of {sizing.memory_mb} MB; open-loop levels cannot fan out"
            raise ConfigError([Issue("levels", too_large, reason)], context=f"matrix {matrix.name}")
    # Every configuration in flight may be running its largest level at once: its shards all run together.
    at_once = matrix.max_parallel_endpoints * max(sizing.shards(level) for level in matrix.levels)
    if at_once > MAX_SHARDS:
        reason = (
            f"times the {max(sizing.shards(level) for level in matrix.levels)} load-test Lambdas its largest level "
            f"fans out over would run {at_once} at once; at most {MAX_SHARDS} (a new account's Lambda concurrency)"
        )
        raise ConfigError(
            [Issue("max_parallel_endpoints", matrix.max_parallel_endpoints, reason)], context=f"matrix {matrix.name}"
        )
    configurations = []
    for config in matrix.configurations:
        d = config.deployment
        endpoint = EndpointConfiguration(
            id=config.id,
            description=config.describe(),
            model=d.model,
            quantization=str(d.quantization),
            instance_type=str(d.instance_type),
            tgi_version=d.tgi_version,
            container=primary_container(
                d,
                image_uri=image_for(d),
                model_data_uri=model_data_uri(d, bucket_name=weights_bucket_name),
            ),
            variant=production_variant(d),
            engine=d.engine,
            vllm_version=d.vllm_version,
            payload=d.engine_spec.default_payload,
        )
        configurations.append(configuration_data(endpoint))
    return {
        "name": matrix.name,
        "configurations": configurations,
        "levels": level_items(matrix.levels, sizing),
        "load": shared_load(matrix.load),
        "skipped": [{"id": s.id, "reasons": list(s.reasons)} for s in matrix.skipped],
    }


class BenchmarkStateMachine(Construct):
    """Exposes ``state_machine``, ``log_group`` and ``role``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: BenchmarkStateMachineProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        stack = cdk.Stack.of(self)
        self.arn_patterns = {
            kind: stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{props.prefix}-*")
            for kind in ("model", "endpoint-config", "endpoint")
        }
        # One owner of each image's URI and region rule (a region without the image is refused before any
        # resource is created, or at synth when the region is concrete): one per engine and version.
        deployments = {image_key(c.deployment): c.deployment for m in props.matrices.values() for c in m.configurations}
        self.images = {
            key: ImageLocation(self, image_construct_id(d), image=d.image) for key, d in sorted(deployments.items())
        }

        per_configuration = self._configuration_chain()
        run_configurations = sfn.Map(
            self,
            "ForEachConfiguration",
            items_path="$.plan.configurations",
            item_selector={
                "config.$": "$$.Map.Item.Value",
                "run_id.$": "$.run_id",
                "execution_tag.$": "$.execution_tag",
                "matrix.$": "$.matrix",
                "levels.$": "$.plan.levels",
                "load.$": "$.plan.load",
            },
            max_concurrency=props.max_parallel_endpoints,
            result_path="$.configurations",
        )
        run_configurations.item_processor(per_configuration)

        finish = self._finish(run_configurations)
        select = sfn.Choice(self, "SelectMatrix")
        for name, matrix in sorted(props.matrices.items()):
            payload = matrix_items(
                matrix,
                image_for=lambda d: self.images[image_key(d)].uri,
                weights_bucket_name=props.weights_bucket.bucket_name,
                sizing=props.load_test_sizing,
            )
            load_matrix = sfn.Pass(self, f"Matrix-{name}", result=sfn.Result.from_object(payload), result_path="$.plan")
            select.when(sfn.Condition.string_equals("$.matrix", name), load_matrix)
            load_matrix.next(run_configurations)
        select.otherwise(
            sfn.Fail(self, "UnknownMatrix", error="UnknownMatrix", cause=f"known: {', '.join(sorted(props.matrices))}")
        )
        new_run = sfn.Pass(
            self,
            "NewRun",
            parameters={
                "matrix.$": "$.matrix",
                "run_id.$": "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)",
                "execution_tag.$": "States.Hash($$.Execution.Id, 'SHA-256')",
            },
        )
        definition = new_run.next(select)
        run_configurations.next(finish)

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            encryption_key=props.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=props.timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(props.key),
        )
        self.role = self.state_machine.role
        self._grant()
        self._depend_on_policy_only()
        self._acknowledge()

    def _finish(self, run_configurations: sfn.Map) -> sfn.IChainable:
        """Aggregate and notify after every configuration; a failed Map or aggregation notifies and fails."""
        props = self.props
        aggregate = tasks.LambdaInvoke(
            self,
            "Aggregate",
            lambda_function=props.aggregate_function,
            payload=sfn.TaskInput.from_object(
                {
                    **payload(
                        AggregateEvent,
                        {
                            "run_id": sfn.JsonPath.string_at("$.run_id"),
                            "matrix": sfn.JsonPath.string_at("$.matrix"),
                            "configurations": sfn.JsonPath.list_at("$.configurations"),
                            "skipped": sfn.JsonPath.list_at("$.plan.skipped"),
                        },
                    ),
                    **({"slo": props.slo} if props.slo else {}),
                }
            ),
            payload_response_only=True,
            result_path="$.report",
        )
        notify = self._notify("Notify", "Llama 2 benchmark finished", "report")
        notify_failure = self._notify("NotifyFailure", "Llama 2 benchmark failed", "error")
        failed = sfn.Fail(self, "RunFailed", error="BenchmarkFailed", cause="see the SNS notification and the logs")
        notify_failure.next(failed)
        run_configurations.add_catch(notify_failure, result_path="$.error")
        aggregate.add_catch(notify_failure, result_path="$.error")
        notify.add_catch(failed)

        aggregate.next(notify).next(sfn.Succeed(self, "Done"))
        return aggregate

    def _notify(self, state_id: str, subject: str, field: str) -> tasks.SnsPublish:
        """Publish the run, its matrix and the object at ``$.<field>`` (the report, or the error) to the topic."""
        return tasks.SnsPublish(
            self,
            state_id,
            topic=self.props.topic,
            subject=subject,
            message=sfn.TaskInput.from_object(
                {
                    "run_id": sfn.JsonPath.string_at("$.run_id"),
                    "matrix": sfn.JsonPath.string_at("$.matrix"),
                    field: sfn.JsonPath.object_at(f"$.{field}"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )

    # --- per configuration -------------------------------------------------------------------------

    def _tags(self) -> list[dict[str, str]]:
        return [
            {"Key": BENCHMARK_TAG, "Value": "true"},
            {"Key": TTL_TAG, "Value": str(self.props.endpoint_ttl_hours)},
            {"Key": RUN_TAG, "Value.$": "$.run_id"},
            {"Key": EXECUTION_TAG, "Value.$": "$.execution_tag"},
        ]

    def _sagemaker(
        self,
        state_id: str,
        action: str,
        kind: str,
        parameters: dict[str, Any],
        *,
        result_path: str = sfn.JsonPath.DISCARD,
        **kw: Any,
    ) -> sfn.TaskStateBase:
        """One SageMaker API call scoped to ``kind``'s ARN pattern, retried on the transient errors' names."""
        task = tasks.CallAwsService(
            self,
            state_id,
            service="sagemaker",
            action=action,
            iam_action=f"sagemaker:{action[0].upper()}{action[1:]}",
            # The Service Authorization Reference authorises CreateEndpoint on the endpoint and its endpoint config.
            iam_resources=[self.arn_patterns[kind]]
            + ([self.arn_patterns["endpoint-config"]] if action == "createEndpoint" else []),
            parameters=parameters,
            result_path=result_path,
            **kw,
        )
        retry = SAGEMAKER_RETRY
        task.add_retry(
            errors=list(SAGEMAKER_TRANSIENT_ERRORS),
            interval=cdk.Duration.seconds(int(retry["interval_s"])),
            max_attempts=int(retry["max_attempts"]),
            backoff_rate=retry["backoff_rate"],
        )
        return task

    def _describe_endpoint(self, state_id: str, *, result_path: str) -> sfn.TaskStateBase:
        """The endpoint's status at ``result_path`` (``.status``), for the create and teardown polling loops."""
        return self._sagemaker(
            state_id,
            "describeEndpoint",
            "endpoint",
            {"EndpointName.$": "$.names.name"},
            result_selector={"status.$": "$.EndpointStatus"},
            result_path=result_path,
        )

    def _configuration_chain(self) -> sfn.IChainable:
        p = self.props
        name = f"States.Format('{p.prefix}-{{}}-{{}}', $.run_id, $.config.id)"
        names = sfn.Pass(
            self,
            "Names",
            parameters={"name.$": name, "model_ref": {"ModelName.$": name}},
            result_path="$.names",
        )
        variant = sfn.Pass(
            self,
            "VariantRequest",
            parameters={"value.$": "States.JsonMerge($.config.variant, $.names.model_ref, false)"},
            result_path="$.variant",
        )
        create_model = self._sagemaker(
            "CreateModel",
            "createModel",
            "model",
            {
                "ModelName.$": "$.names.name",
                **isolated_hosting(
                    role_arn=p.execution_role.role_arn,
                    subnet_ids=p.vpc.select_subnets(**selection_kwargs(p.subnets)).subnet_ids,
                    security_group_ids=[p.endpoint_security_group.security_group_id],
                ),
                "PrimaryContainer.$": "$.config.container",
                "Tags": self._tags(),
            },
        )
        create_config = self._sagemaker(
            "CreateEndpointConfig",
            "createEndpointConfig",
            "endpoint-config",
            {
                "EndpointConfigName.$": "$.names.name",
                "ProductionVariants.$": "States.Array($.variant.value)",
                "Tags": self._tags(),
            },
        )
        create_endpoint = self._sagemaker(
            "CreateEndpoint",
            "createEndpoint",
            "endpoint",
            {"EndpointName.$": "$.names.name", "EndpointConfigName.$": "$.names.name", "Tags": self._tags()},
        )
        init_polls = sfn.Pass(self, "InitPolls", result=sfn.Result.from_object({"count": 0}), result_path="$.polls")
        describe = self._describe_endpoint("DescribeEndpoint", result_path="$.endpoint")
        count_poll = sfn.Pass(
            self, "CountPoll", parameters={"count.$": "States.MathAdd($.polls.count, 1)"}, result_path="$.polls"
        )
        wait = sfn.Wait(self, "WaitForEndpoint", time=sfn.WaitTime.duration(p.poll_interval))
        endpoint_failed = self._error("EndpointFailed", "DescribeEndpoint returned Failed")
        deadline = self._error("EndpointDeadline", f"not InService after {p.max_polls} polls")
        succeeded = sfn.Pass(
            self, "MarkSucceeded", result=sfn.Result.from_string(OUTCOME_SUCCEEDED), result_path="$.outcome"
        )
        levels = self._levels()
        init_teardown = self._teardown()
        record_failure = self._record_failure(then=init_teardown)
        # Failure handling: every state that can fail records the failure and joins the teardown.
        for state in (create_model, create_config, create_endpoint, describe, levels):
            state.add_catch(record_failure, result_path="$.error")
        endpoint_failed.next(record_failure)
        deadline.next(record_failure)

        in_service = (
            sfn.Choice(self, "EndpointInService?")
            .when(sfn.Condition.string_equals("$.endpoint.status", "InService"), levels)
            .when(sfn.Condition.string_equals("$.endpoint.status", "Failed"), endpoint_failed)
            .when(sfn.Condition.number_greater_than_equals("$.polls.count", p.max_polls), deadline)
            .otherwise(count_poll)
        )
        count_poll.next(wait).next(describe)
        levels.next(succeeded).next(init_teardown)
        return (
            names.next(variant)
            .next(create_model)
            .next(create_config)
            .next(create_endpoint)
            .next(init_polls)
            .next(describe)
            .next(in_service)
        )

    def _error(self, error: str, cause: str) -> sfn.Pass:
        """A Pass state that puts an error at ``$.error`` as a Catch would."""
        return sfn.Pass(
            self, error, result=sfn.Result.from_object({"Error": error, "Cause": cause}), result_path="$.error"
        )

    def _levels(self) -> sfn.Map:
        """Every concurrency level on the one endpoint, one at a time; each level stores its own record."""
        levels = sfn.Map(
            self,
            "RunLevels",
            items_path="$.levels",
            max_concurrency=1,  # one level at a time on the one endpoint
            item_selector={
                "level": selector(
                    LevelEvent,
                    {
                        "endpoint_name": "$.names.name",
                        "run_id": "$.run_id",
                        "matrix": "$.matrix",
                        "configuration": "$.config",
                        "load": LEVEL_LOAD,
                    },
                ),
                f"{ITEM_SHARDS}.$": f"$$.Map.Item.Value.{ITEM_SHARDS}",
            },
            result_path="$.levels_done",
        )
        load_test = tasks.LambdaInvoke(
            self,
            "LoadTest",
            lambda_function=self.props.load_test_function,
            input_path="$.level",
            payload_response_only=True,
            retry_on_service_exceptions=True,
        )
        levels.item_processor(self._one_level(load_test))
        return levels

    def _one_level(self, load_test: sfn.TaskStateBase) -> sfn.IChainable:
        """A level without shards runs whole in ``load_test``, as before fan-out existed; a level with shards runs in
        ShardLevel (every shard a load-test Lambda, all starting at the Map's entered time plus SHARD_LEAD_S),
        then MergeShards writes its record. A failed shard fails the Map, and so the level (no merge)."""
        function = self.props.load_test_function
        shard = payload(
            ShardEvent,
            {
                "index": sfn.JsonPath.number_at("$$.Map.Item.Value.index"),
                "count": sfn.JsonPath.number_at("$$.Map.Item.Value.count"),
                "map_started_at": sfn.JsonPath.string_at("$$.State.EnteredTime"),  # the Map's: one for every shard
                "lead_s": SHARD_LEAD_S,
            },
        )
        shards = sfn.Map(
            self,
            "ShardLevel",
            items_path=f"$.{ITEM_SHARDS}",
            max_concurrency=MAX_SHARDS,  # every shard at once: they start together
            item_selector={
                **selector(LevelEvent, {name: f"$.level.{name}" for name in required_fields(LevelEvent)}),
                "shard": shard,
            },
            result_path="$.shard_records",
        )
        shards.item_processor(
            tasks.LambdaInvoke(
                self,
                "ShardLoadTest",
                lambda_function=function,
                payload_response_only=True,
                retry_on_service_exceptions=True,
            ).add_retry(
                # Throttled (the account's concurrency): retried within the shards' common lead, 2 + 4 + 8 s, so a
                # shard still starts on time; past that it fails late (SHARD_LATE_S) rather than measure alone.
                errors=["Lambda.TooManyRequestsException"],
                interval=cdk.Duration.seconds(2),
                max_attempts=3,
                backoff_rate=2,
            )
        )
        merge = tasks.LambdaInvoke(
            self,
            "MergeShards",
            lambda_function=function,
            payload=sfn.TaskInput.from_object(
                payload(
                    MergeEvent,
                    {"level": sfn.JsonPath.object_at("$.level"), "shards": sfn.JsonPath.list_at("$.shard_records")},
                )
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
        )
        shards.next(merge)
        return (
            sfn.Choice(self, "LevelSharded?")
            .when(sfn.Condition.is_present(f"$.{ITEM_SHARDS}[0]"), shards)
            .otherwise(load_test)
        )

    def _record_failure(self, *, then: sfn.IChainable) -> sfn.TaskStateBase:
        """Store the failed configuration's state in the results bucket, mark it failed, go on to ``then``
        (also when the record cannot be written: the report counts it from the outcome)."""
        record_failure = tasks.CallAwsService(
            self,
            "RecordFailure",
            service="s3",
            action="putObject",
            iam_action="s3:PutObject",
            iam_resources=[self.props.results_bucket.arn_for_objects(f"{RESULTS_PREFIX}*")],
            parameters={
                "Bucket": self.props.results_bucket.bucket_name,
                "Key.$": f"States.Format('{failures_prefix(RESULTS_PREFIX, '{}')}{{}}.json', $.run_id, $.config.id)",
                "Body.$": "States.JsonToString($)",
                "ContentType": "application/json",
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        mark_failed = sfn.Pass(
            self, "MarkFailed", result=sfn.Result.from_string(OUTCOME_FAILED), result_path="$.outcome"
        )
        record_failure.add_catch(mark_failed, result_path="$.record_error")
        record_failure.next(mark_failed)
        mark_failed.next(then)
        return record_failure

    def _teardown(self) -> sfn.IChainable:
        """Wait until the endpoint can be deleted (bounded), then delete endpoint, config and model; each delete
        tolerates "not found" (a create that never happened) and goes on to the next."""
        delete_endpoint = self._sagemaker(
            "DeleteEndpoint", "deleteEndpoint", "endpoint", {"EndpointName.$": "$.names.name"}
        )
        delete_config = self._sagemaker(
            "DeleteEndpointConfig", "deleteEndpointConfig", "endpoint-config", {"EndpointConfigName.$": "$.names.name"}
        )
        delete_model = self._sagemaker("DeleteModel", "deleteModel", "model", {"ModelName.$": "$.names.name"})
        done = sfn.Pass(
            self,
            "ConfigurationDone",
            parameters=selector(
                ConfigurationOutcome, {"id": "$.config.id", "name": "$.names.name", "outcome": "$.outcome"}
            ),
        )

        init_teardown = sfn.Pass(
            self, "InitTeardownPolls", result=sfn.Result.from_object({"count": 0}), result_path="$.teardown_polls"
        )
        teardown_describe = self._describe_endpoint("TeardownDescribeEndpoint", result_path="$.teardown_endpoint")
        teardown_count = sfn.Pass(
            self,
            "CountTeardownPoll",
            parameters={"count.$": "States.MathAdd($.teardown_polls.count, 1)"},
            result_path="$.teardown_polls",
        )
        teardown_wait = sfn.Wait(self, "WaitUntilDeletable", time=sfn.WaitTime.duration(self.props.poll_interval))
        busy = sfn.Condition.or_(*(sfn.Condition.string_equals("$.teardown_endpoint.status", s) for s in BUSY_STATUSES))
        deletable = (
            sfn.Choice(self, "EndpointDeletable?")
            .when(
                sfn.Condition.and_(
                    busy, sfn.Condition.number_less_than("$.teardown_polls.count", self.props.max_teardown_polls)
                ),
                teardown_count,
            )
            .otherwise(delete_endpoint)
        )
        init_teardown.next(teardown_describe).next(deletable)
        teardown_count.next(teardown_wait).next(teardown_describe)
        # If the describe itself fails, try the delete anyway: its own catch covers "not found".
        teardown_describe.add_catch(delete_endpoint, result_path="$.teardown_error")

        delete_endpoint.add_catch(delete_config, result_path="$.teardown_error")
        delete_config.add_catch(delete_model, result_path="$.teardown_error")
        delete_model.add_catch(done, result_path="$.teardown_error")
        delete_endpoint.next(delete_config).next(delete_model).next(done)
        return init_teardown

    # --- permissions -------------------------------------------------------------------------------

    def _depend_on_policy_only(self) -> None:
        """CDK makes the state machine depend on its role and policy; the role's GetAtt already orders the
        role, and cfn-lint (W3005) flags the duplicate. Keep the policy: the machine must not start without it."""
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        machine = self.state_machine.node.default_child
        assert isinstance(policy, cdk.CfnResource) and isinstance(machine, cdk.CfnResource)
        machine.add_override("DependsOn", [cdk.Stack.of(self).resolve(policy.logical_id)])

    def _acknowledge(self) -> None:
        """What remains after scoping every statement to this machine's resources, with the reason."""
        p = self.props
        acknowledge_own_inline_policy(self.role)
        acknowledge_results_objects(self.role, p.results_bucket)
        acks = cdk.Validations.of(self.role)
        for kind in self.arn_patterns:
            acks.acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions-IAM5[{sagemaker_arn_prefix(self)}:{kind}/{p.prefix}-*]",
                    reason="names carry the run id, made at run time; the benchmark prefix limits the state "
                    "machine to its own models, configs and endpoints",
                )
            )
        for fn in (p.load_test_function, p.aggregate_function):
            acks.acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{arn_ref(fn)}:*]",
                    reason="LambdaInvoke grants the function's versions and aliases; only this function",
                )
            )
        acks.acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments and GetSamplingRules have no resource-level permissions",
            )
        )

    def _grant(self) -> None:
        p = self.props
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:AddTags"],
                resources=list(self.arn_patterns.values()),
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[p.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        p.key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")  # results objects are SSE-KMS
