"""An isolated VPC: no internet gateway, no NAT; AWS services are reached through VPC endpoints only.

Endpoints run with ``EnableNetworkIsolation`` and read their weights from S3, so nothing in this VPC needs
the internet. What it needs from AWS goes through an S3 gateway endpoint and interface endpoints (the list is
a prop). Security groups open no ingress except 443 on the interface endpoints.

Egress to S3: the gateway endpoint is reached at S3's public addresses, which a security group can name only
by the region's managed prefix list (``com.amazonaws.<region>.s3``). Its id differs per region and cannot be
resolved offline, so ``s3_prefix_list_id`` is a prop: when given, workload egress is 443 to the VPC plus 443 to
that list; when not, it is 443 to any address, which in a VPC without an internet or NAT gateway still leads
only to the gateway endpoint and the interface endpoints.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from catalog.network_options import DEFAULT_INTERFACE_ENDPOINTS
from constructs import Construct

_SERVICE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")
_PREFIX_LIST = re.compile(r"^pl-[0-9a-f]{8,17}$")
HTTPS = 443


@dataclass(frozen=True, kw_only=True)
class NetworkProps:
    key: kms.IKey  # encrypts the flow-log group
    cidr: str = "10.42.0.0/16"
    max_azs: int = 2
    subnet_cidr_mask: int = 22
    interface_endpoints: tuple[str, ...] = DEFAULT_INTERFACE_ENDPOINTS
    # Who may call the interface endpoints: None = any address of the VPC; otherwise only these groups
    # (the construct's own endpoint and Lambda groups are always added).
    endpoint_client_security_groups: tuple[ec2.ISecurityGroup, ...] | None = None
    s3_prefix_list_id: str | None = None  # see the module docstring
    flow_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN
    extra_tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            net = ipaddress.IPv4Network(self.cidr)
        except ValueError as err:
            raise ValueError(f"cidr {self.cidr!r} is not an IPv4 network: {err}") from None
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"cidr {self.cidr!r} must be a /16 to /24 (the VPC limits)")
        if not 1 <= self.max_azs <= 6:
            raise ValueError("max_azs must be 1..6")
        if not net.prefixlen < self.subnet_cidr_mask <= 28:
            raise ValueError(f"subnet_cidr_mask must be longer than the VPC's /{net.prefixlen} and at most /28")
        if 2 ** (self.subnet_cidr_mask - net.prefixlen) < self.max_azs:
            raise ValueError(f"{self.cidr} has no room for {self.max_azs} subnets of /{self.subnet_cidr_mask}")
        bad = [s for s in self.interface_endpoints if not _SERVICE.match(s) or s == "s3"]
        if bad:
            raise ValueError(f"interface endpoint names {bad} are invalid (s3 is the gateway endpoint)")
        if len(set(self.interface_endpoints)) != len(self.interface_endpoints):
            raise ValueError("interface_endpoints has duplicates")
        if self.s3_prefix_list_id is not None and not _PREFIX_LIST.match(self.s3_prefix_list_id):
            raise ValueError(f"s3_prefix_list_id {self.s3_prefix_list_id!r} is not a prefix list id (pl-...)")


class Network(Construct):
    """Exposes ``.vpc``, ``.subnet_selection``, ``.endpoint_security_group``, ``.lambda_security_group``,
    ``.interface_endpoint_security_group``, ``.interface_endpoints`` (by service name) and ``.flow_log_group``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: NetworkProps) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(props.cidr),
            max_azs=props.max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=props.subnet_cidr_mask
                )
            ],
            enable_dns_hostnames=True,  # interface endpoints' private DNS needs both
            enable_dns_support=True,
            # The default group is left as EC2 makes it: nothing here is attached to it (every resource gets
            # an explicit group), and closing it would take a custom-resource Lambda in this VPC.
            restrict_default_security_group=False,
        )
        self.subnet_selection = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=props.key,
            retention=props.flow_log_retention,
            removal_policy=props.removal_policy,
        )
        self.flow_log_role = self._flow_log_role()
        self.flow_log = self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group, self.flow_log_role.without_policy_updates()
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.endpoint_security_group = self._workload_group(
            "EndpointSecurityGroup", "SageMaker endpoints: no ingress; egress 443 to VPC endpoints and S3", props
        )
        self.lambda_security_group = self._workload_group(
            "LambdaSecurityGroup", "Tooling Lambda functions: no ingress; egress 443 to VPC endpoints and S3", props
        )
        self.interface_endpoint_security_group = ec2.SecurityGroup(
            self,
            "InterfaceEndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface VPC endpoints: 443 in from the workloads only, nothing out",
            allow_all_outbound=False,
        )
        self._restrict_interface_endpoint_ingress(props)

        self.s3_gateway_endpoint = self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnet_selection]
        )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for service in props.interface_endpoints:
            self.interface_endpoints[service] = self.vpc.add_interface_endpoint(
                _construct_id(service),
                service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=self.subnet_selection,
                security_groups=[self.interface_endpoint_security_group],
                private_dns_enabled=True,
                open=False,  # ingress is the explicit rules above, not the whole VPC by default
            )
        for key, value in props.extra_tags.items():
            cdk.Tags.of(self).add(key, value)
        cdk.Validations.of(self.vpc).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-VPCDefaultSecurityGroupClosed",
                reason="nothing is attached to the default security group (every endpoint, function and "
                "interface endpoint gets its own group above) and the VPC has no internet or NAT gateway; "
                "closing it would take CDK's custom-resource Lambda, a new function outside the VPC",
            )
        )

    def _flow_log_role(self) -> iam.Role:
        """The flow-log service's role: write to the one log group, for flow logs of this account only.

        Its permissions are a customer-managed policy, not CDK's inline grant (NIST IAMNoInlinePolicy).
        """
        stack = cdk.Stack.of(self)
        role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(service="ec2", resource="vpc-flow-log", resource_name="*")
                    },
                },
            ),
            description="VPC flow logs delivery to their encrypted log group",
        )
        iam.ManagedPolicy(
            self,
            "FlowLogPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[self.flow_log_group.log_group_arn],
                )
            ],
        )
        return role

    def _workload_group(self, construct_id: str, description: str, props: NetworkProps) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(self, construct_id, vpc=self.vpc, description=description, allow_all_outbound=False)
        group.add_egress_rule(ec2.Peer.ipv4(props.cidr), ec2.Port.tcp(HTTPS), "HTTPS to the interface endpoints")
        s3 = (
            ec2.Peer.prefix_list(props.s3_prefix_list_id)
            if props.s3_prefix_list_id
            else ec2.Peer.any_ipv4()  # only the S3 gateway route leaves this VPC (no IGW, no NAT)
        )
        group.add_egress_rule(s3, ec2.Port.tcp(HTTPS), "HTTPS to S3 through the gateway endpoint")
        return group

    def _restrict_interface_endpoint_ingress(self, props: NetworkProps) -> None:
        group = self.interface_endpoint_security_group
        if props.endpoint_client_security_groups is None:
            # The literal CIDR, not the VPC's CidrBlock attribute: the rule stays checkable at synth.
            group.add_ingress_rule(ec2.Peer.ipv4(props.cidr), ec2.Port.tcp(HTTPS), "HTTPS from inside the VPC")
            return
        clients = (self.endpoint_security_group, self.lambda_security_group, *props.endpoint_client_security_groups)
        for client in clients:
            group.add_ingress_rule(client, ec2.Port.tcp(HTTPS), "HTTPS from a workload security group")


def _construct_id(service: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[.-]", service))
