"""Network reachability: a path AWS's VPC would carry, or the first piece it lacks.

Each test builds the private-network design every stack here uses (private subnets in two zones,
one NAT gateway in a public subnet behind an internet gateway, a DynamoDB gateway endpoint, an SQS
interface endpoint with private DNS, a Redis security group, a custom network ACL on the private
subnets) and removes one piece of it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tapharness.sandbox.network import Network, Path, Target, reach
from tapharness.sandbox.process import SandboxProcess

from .helpers import unique

# A VPC per test and functions started in it: among the longest files, so handed out first.
pytestmark = pytest.mark.slow

CIDR = "10.20.0.0/16"


@dataclass
class Vpc:
    ec2: Any
    id: str
    public: str
    private: tuple[str, str]
    private_table: str
    public_table: str
    nat: str
    igw: str
    acl: str
    groups: dict[str, str]
    dynamodb_endpoint: str
    sqs_endpoint: str

    def reach(self, target: Target, subnets: tuple[str, ...] | None = None,
              groups: tuple[str, ...] | None = None) -> Path:
        return reach(Network.read(self.ec2), self.private if subnets is None else subnets,
                     (self.groups["lambda"],) if groups is None else groups, target)

    @property
    def redis(self) -> Target:
        return Target("private", "redis.example", 6379, self.id, self.private, (self.groups["redis"],))


def _rule(port: int | tuple[int, int], **peer: Any) -> dict[str, Any]:
    low, high = (port, port) if isinstance(port, int) else port
    return {"IpProtocol": "tcp", "FromPort": low, "ToPort": high, **peer}


@pytest.fixture
def vpc(aws: Callable[[str], Any]) -> Vpc:
    ec2 = aws("ec2")
    vpc_id = ec2.create_vpc(CidrBlock=CIDR)["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    private = tuple(ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
                    for cidr, zone in (("10.20.10.0/24", "us-east-1a"), ("10.20.11.0/24", "us-east-1b")))
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    public_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
    private_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private_table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    for subnet in private:
        ec2.associate_route_table(RouteTableId=private_table, SubnetId=subnet)

    groups = {name: ec2.create_security_group(GroupName=f"{name}-{vpc_id}", Description=name, VpcId=vpc_id)["GroupId"]
              for name in ("lambda", "redis", "endpoints")}
    ec2.revoke_security_group_egress(GroupId=groups["lambda"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=groups["lambda"], IpPermissions=[
        _rule(443, IpRanges=[{"CidrIp": "0.0.0.0/0"}]),
        _rule(6379, UserIdGroupPairs=[{"GroupId": groups["redis"]}])])
    ec2.authorize_security_group_ingress(GroupId=groups["redis"], IpPermissions=[
        _rule(6379, UserIdGroupPairs=[{"GroupId": groups["lambda"]}])])
    ec2.authorize_security_group_ingress(GroupId=groups["endpoints"], IpPermissions=[
        _rule(443, UserIdGroupPairs=[{"GroupId": groups["lambda"]}])])

    dynamodb = ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName="com.amazonaws.us-east-1.dynamodb",
                                       VpcEndpointType="Gateway", RouteTableIds=[private_table])["VpcEndpoint"]
    sqs = ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName="com.amazonaws.us-east-1.sqs", VpcEndpointType="Interface",
                                  SubnetIds=list(private), SecurityGroupIds=[groups["endpoints"]],
                                  PrivateDnsEnabled=True)["VpcEndpoint"]

    # The private subnets' ACL, as the clickstream stack writes it: services in, answers back.
    acl = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"]
    entries = [(100, False, (443, 443), CIDR), (110, False, (6379, 6379), CIDR), (120, False, (1024, 65535), "0.0.0.0/0"),
               (100, True, (443, 443), "0.0.0.0/0"), (110, True, (6379, 6379), CIDR), (120, True, (1024, 65535), CIDR)]
    for number, egress, (low, high), cidr in entries:
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol="6", RuleAction="allow",
                                     Egress=egress, CidrBlock=cidr, PortRange={"From": low, "To": high})
    for association in ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]:
        for link in association["Associations"]:
            if link["SubnetId"] in private:
                ec2.replace_network_acl_association(AssociationId=link["NetworkAclAssociationId"], NetworkAclId=acl)
    return Vpc(ec2, vpc_id, public, private, private_table, public_table, nat, igw, acl, groups,
               dynamodb["VpcEndpointId"], sqs["VpcEndpointId"])


def _refused(path: Path, *pieces: str) -> None:
    assert not path.ok, f"expected a refused path, got via {path.via!r}"
    for piece in pieces:
        assert piece in path.missing, f"{piece!r} not named in: {path.missing}"


# --- the design as built ----------------------------------------------------------------

def test_an_api_with_an_interface_endpoint_is_reached_through_it(vpc: Vpc) -> None:
    assert vpc.reach(Target("aws", "sqs")).via == f"interface endpoint {vpc.sqs_endpoint}"


def test_dynamodb_is_reached_through_its_gateway_endpoint(vpc: Vpc) -> None:
    assert vpc.reach(Target("aws", "dynamodb")).via.startswith(f"gateway endpoint {vpc.dynamodb_endpoint}")


def test_an_api_without_an_endpoint_leaves_through_the_nat_gateway(vpc: Vpc) -> None:
    assert vpc.reach(Target("aws", "athena")).via == f"NAT gateway {vpc.nat} -> internet gateway {vpc.igw}"


def test_redis_is_reached_across_both_private_subnets(vpc: Vpc) -> None:
    assert vpc.reach(vpc.redis).via == "local (redis.example)"


def test_a_function_outside_a_vpc_reaches_public_apis_but_no_private_host(vpc: Vpc) -> None:
    assert vpc.reach(Target("aws", "athena"), subnets=(), groups=()).ok
    _refused(vpc.reach(vpc.redis, subnets=(), groups=()), "not connected to a VPC")


# --- one piece removed ------------------------------------------------------------------

def test_without_the_redis_ingress_rule_redis_is_refused(vpc: Vpc) -> None:
    vpc.ec2.revoke_security_group_ingress(GroupId=vpc.groups["redis"], IpPermissions=[
        _rule(6379, UserIdGroupPairs=[{"GroupId": vpc.groups["lambda"]}])])
    _refused(vpc.reach(vpc.redis), "no ingress rule", vpc.groups["redis"], "tcp 6379")


def test_without_the_lambda_egress_rule_redis_is_refused(vpc: Vpc) -> None:
    vpc.ec2.revoke_security_group_egress(GroupId=vpc.groups["lambda"], IpPermissions=[
        _rule(6379, UserIdGroupPairs=[{"GroupId": vpc.groups["redis"]}])])
    _refused(vpc.reach(vpc.redis), "no egress rule", vpc.groups["lambda"])


def test_without_the_acl_return_rule_redis_in_the_other_zone_is_refused(vpc: Vpc) -> None:
    vpc.ec2.delete_network_acl_entry(NetworkAclId=vpc.acl, RuleNumber=120, Egress=True)
    _refused(vpc.reach(vpc.redis), vpc.acl, "outbound", "tcp 1024-65535", "back from")


def test_a_return_rule_narrower_than_lambdas_ephemeral_ports_is_refused(vpc: Vpc) -> None:
    vpc.ec2.replace_network_acl_entry(NetworkAclId=vpc.acl, RuleNumber=120, Protocol="6", RuleAction="allow",
                                      Egress=True, CidrBlock=CIDR, PortRange={"From": 32768, "To": 65535})
    _refused(vpc.reach(vpc.redis), vpc.acl, "tcp 1024-65535")


def test_a_deny_entry_before_the_allow_wins(vpc: Vpc) -> None:
    vpc.ec2.create_network_acl_entry(NetworkAclId=vpc.acl, RuleNumber=50, Protocol="6", RuleAction="deny",
                                     Egress=True, CidrBlock="10.20.11.0/24", PortRange={"From": 6379, "To": 6379})
    _refused(vpc.reach(vpc.redis), vpc.acl, "outbound", "tcp 6379")


def test_without_the_nat_route_an_api_without_endpoint_is_refused(vpc: Vpc) -> None:
    vpc.ec2.delete_route(RouteTableId=vpc.private_table, DestinationCidrBlock="0.0.0.0/0")
    _refused(vpc.reach(Target("aws", "athena")), vpc.private_table, "no route to 0.0.0.0/0")


def test_a_nat_gateway_without_an_internet_gateway_route_is_refused(vpc: Vpc) -> None:
    vpc.ec2.delete_route(RouteTableId=vpc.public_table, DestinationCidrBlock="0.0.0.0/0")
    _refused(vpc.reach(Target("internet", "partner.example")), vpc.nat, "internet gateway")


def test_a_function_in_a_public_subnet_gets_no_internet_from_the_internet_gateway(vpc: Vpc) -> None:
    _refused(vpc.reach(Target("aws", "athena"), subnets=(vpc.public,)), vpc.igw, "no public IP")


def test_without_the_gateway_endpoints_route_table_dynamodb_goes_through_the_nat(vpc: Vpc) -> None:
    vpc.ec2.modify_vpc_endpoint(VpcEndpointId=vpc.dynamodb_endpoint, RemoveRouteTableIds=[vpc.private_table])
    assert vpc.reach(Target("aws", "dynamodb")).via.startswith(f"NAT gateway {vpc.nat}")


def test_without_gateway_endpoint_association_or_nat_dynamodb_is_refused(vpc: Vpc) -> None:
    vpc.ec2.modify_vpc_endpoint(VpcEndpointId=vpc.dynamodb_endpoint, RemoveRouteTableIds=[vpc.private_table])
    vpc.ec2.delete_route(RouteTableId=vpc.private_table, DestinationCidrBlock="0.0.0.0/0")
    _refused(vpc.reach(Target("aws", "dynamodb")), "no route to 0.0.0.0/0")


def test_without_the_interface_endpoint_sqs_goes_through_the_nat(vpc: Vpc) -> None:
    vpc.ec2.delete_vpc_endpoints(VpcEndpointIds=[vpc.sqs_endpoint])
    assert vpc.reach(Target("aws", "sqs")).via.startswith(f"NAT gateway {vpc.nat}")


def test_an_interface_endpoint_its_security_group_refuses_is_not_bypassed_through_the_nat(vpc: Vpc) -> None:
    vpc.ec2.revoke_security_group_ingress(GroupId=vpc.groups["endpoints"], IpPermissions=[
        _rule(443, UserIdGroupPairs=[{"GroupId": vpc.groups["lambda"]}])])
    _refused(vpc.reach(Target("aws", "sqs")), vpc.sqs_endpoint, vpc.groups["endpoints"], "no ingress rule")


def test_without_https_egress_nothing_public_is_reached(vpc: Vpc) -> None:
    vpc.ec2.revoke_security_group_egress(GroupId=vpc.groups["lambda"], IpPermissions=[
        _rule(443, IpRanges=[{"CidrIp": "0.0.0.0/0"}])])
    _refused(vpc.reach(Target("aws", "athena")), "no egress rule", "0.0.0.0/0")


# --- what a function sees --------------------------------------------------------------------

PROBE = """
import socket
import boto3
from botocore.config import Config

def lambda_handler(event, context):
    seen = {}
    sqs = boto3.client("sqs", config=Config(connect_timeout=1, retries={"max_attempts": 1}))
    try:
        if event.get("send"):
            sqs.send_message(QueueUrl=event["send"], MessageBody="hello")
        elif event.get("queue"):
            sqs.get_queue_attributes(QueueUrl=event["queue"])
        else:
            sqs.list_queues()
        seen["sqs"] = "ok"
    except Exception as exc:
        seen["sqs"] = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
    try:
        socket.create_connection((event["redis"], 6379), timeout=1).close()
        seen["redis"] = "ok"
    except OSError as exc:
        seen["redis"] = type(exc).__name__
    return seen
"""


@pytest.fixture
def probe(vpc: Vpc, aws: Callable[[str], Any], make_function: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """A function in the VPC's private subnets that calls SQS and connects to a Redis in the VPC."""
    cache = aws("elasticache")
    subnet_group = cache.create_cache_subnet_group(CacheSubnetGroupName=unique("subnets"), CacheSubnetGroupDescription="d",
                                                   SubnetIds=list(vpc.private))["CacheSubnetGroup"]["CacheSubnetGroupName"]
    group = cache.create_replication_group(
        ReplicationGroupId=unique("rg")[:20], ReplicationGroupDescription="d", Engine="redis",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1, CacheSubnetGroupName=subnet_group,
        SecurityGroupIds=[vpc.groups["redis"]])["ReplicationGroup"]
    redis = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    arn = make_function(PROBE, timeout=10, vpc_config={"SubnetIds": list(vpc.private),
                                                       "SecurityGroupIds": [vpc.groups["lambda"]]})

    def invoke(**event: str) -> dict[str, str]:
        response = aws("lambda").invoke(FunctionName=arn, Payload=json.dumps({"redis": redis, **event}))
        return json.loads(response["Payload"].read())

    return invoke


def _report(sandbox: SandboxProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sandbox.gateway_url}/_sandbox/network", timeout=10) as response:
        return json.loads(response.read())


def test_a_function_with_every_rule_reaches_its_endpoint_and_redis(probe: Callable[..., dict[str, str]],
                                                                   sandbox: SandboxProcess) -> None:
    assert probe() == {"sqs": "ok", "redis": "ok"}


def test_a_function_without_its_rules_times_out_as_on_aws_and_the_report_names_the_missing_rule(
        vpc: Vpc, probe: Callable[..., dict[str, str]], sandbox: SandboxProcess) -> None:
    vpc.ec2.revoke_security_group_ingress(GroupId=vpc.groups["endpoints"], IpPermissions=[
        _rule(443, UserIdGroupPairs=[{"GroupId": vpc.groups["lambda"]}])])
    vpc.ec2.revoke_security_group_ingress(GroupId=vpc.groups["redis"], IpPermissions=[
        _rule(6379, UserIdGroupPairs=[{"GroupId": vpc.groups["lambda"]}])])
    assert probe() == {"sqs": "ConnectTimeoutError", "redis": "TimeoutError"}
    refused = [entry for function in _report(sandbox)["functions"].values()
               for entry in function["refused"].values()]
    assert any(vpc.groups["endpoints"] in entry["missing"] for entry in refused), refused
    assert any(vpc.groups["redis"] in entry["missing"] for entry in refused), refused


def test_an_endpoint_policy_that_does_not_allow_the_call_denies_it(vpc: Vpc, probe: Callable[..., dict[str, str]]) -> None:
    vpc.ec2.modify_vpc_endpoint(VpcEndpointId=vpc.sqs_endpoint, PolicyDocument=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]}))
    assert probe()["sqs"] == "AccessDenied"


def test_a_call_through_an_endpoint_carries_its_source_vpce_and_one_through_the_nat_does_not(
        vpc: Vpc, aws: Callable[[str], Any], probe: Callable[..., dict[str, str]], sandbox: SandboxProcess) -> None:
    url = aws("sqs").create_queue(QueueName=unique("vpce-only"))["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": arn,
         "Condition": {"StringNotEquals": {"aws:SourceVpce": vpc.sqs_endpoint}}}]})})
    assert probe(queue=url)["sqs"] == "ok", _report(sandbox)
    vpc.ec2.delete_vpc_endpoints(VpcEndpointIds=[vpc.sqs_endpoint])
    assert probe(queue=url)["sqs"] == "AccessDenied", _report(sandbox)


def test_an_egress_rule_to_dynamodbs_prefix_list_also_matches_it_through_the_nat(vpc: Vpc) -> None:
    prefix_lists = {p["PrefixListName"]: p["PrefixListId"] for p in vpc.ec2.describe_managed_prefix_lists()["PrefixLists"]}
    dynamodb = prefix_lists["com.amazonaws.us-east-1.dynamodb"]
    vpc.ec2.revoke_security_group_egress(GroupId=vpc.groups["lambda"], IpPermissions=[
        _rule(443, IpRanges=[{"CidrIp": "0.0.0.0/0"}])])
    vpc.ec2.authorize_security_group_egress(GroupId=vpc.groups["lambda"], IpPermissions=[
        _rule(443, PrefixListIds=[{"PrefixListId": dynamodb}])])
    vpc.ec2.modify_vpc_endpoint(VpcEndpointId=vpc.dynamodb_endpoint, RemoveRouteTableIds=[vpc.private_table])
    assert vpc.reach(Target("aws", "dynamodb")).via.startswith(f"NAT gateway {vpc.nat}")
    _refused(vpc.reach(Target("aws", "athena")), "no egress rule", "0.0.0.0/0")


def test_the_kms_calls_a_service_makes_for_the_caller_do_not_pass_its_endpoint_policy(
        vpc: Vpc, aws: Callable[[str], Any], probe: Callable[..., dict[str, str]]) -> None:
    """SQS encrypts with the caller's identity (a forward access session to KMS): that request is
    SQS's own, not one through the VPC endpoint, so an endpoint policy naming only SQS admits it."""
    key = aws("kms").create_key()["KeyMetadata"]["Arn"]
    url = aws("sqs").create_queue(QueueName=unique("encrypted"), Attributes={"KmsMasterKeyId": key})["QueueUrl"]
    vpc.ec2.modify_vpc_endpoint(VpcEndpointId=vpc.sqs_endpoint, PolicyDocument=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]}))
    assert probe(send=url)["sqs"] == "ok"
