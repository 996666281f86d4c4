"""Network: everything in private subnets except the NAT gateways, minimal NACLs and security groups."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan

SUBNET_ATTRIBUTES = ("subnet_id", "subnet_ids", "subnets", "vpc_config")


def _placements(plan: PlanSummary) -> dict[str, set[str]]:
    """Resource block -> the subnet resources it is placed in (from the configuration)."""
    found: dict[str, set[str]] = {}
    for address in plan.types:
        block = address.split("[", 1)[0]
        refs = {r.split("[", 1)[0] for attribute in SUBNET_ATTRIBUTES for r in plan.refs(address, attribute)
                if r.startswith("aws_subnet.")}
        if refs:
            found.setdefault(block, set()).update(refs)
    return found


def test_only_the_nat_gateways_sit_in_the_nat_subnets(plan: PlanSummary) -> None:
    in_nat = {block for block, subnets in _placements(plan).items() if "aws_subnet.nat" in subnets}
    assert in_nat <= {"aws_nat_gateway.this", "aws_route_table_association.nat", "aws_network_acl.this"}, in_nat
    assert "aws_nat_gateway.this" in in_nat


@pytest.mark.parametrize("block", ["aws_lambda_function.this", "aws_lb.insights", "aws_vpc_endpoint.kinesis"])
def test_workloads_sit_in_the_private_subnets(plan: PlanSummary, block: str) -> None:
    assert _placements(plan)[block] == {"aws_subnet.private"}


def test_the_alb_is_internal_and_spans_every_zone(plan: PlanSummary) -> None:
    alb = plan.values["aws_lb.insights"]
    assert alb["internal"] is True and alb["load_balancer_type"] == "application"
    assert len(plan.of_type("aws_subnet")) == 2 * plan.variables["availability_zone_count"]


def test_no_subnet_hands_out_public_addresses(plan: PlanSummary) -> None:
    assert {a for a, v in plan.of_type("aws_subnet").items() if v["map_public_ip_on_launch"]} == set()


def test_each_private_zone_leaves_through_its_own_nat_gateway(plan: PlanSummary) -> None:
    routes = {a: v for a, v in plan.of_type("aws_route").items() if a.startswith("aws_route.private_nat")}
    assert len(routes) == plan.variables["availability_zone_count"]
    for address in routes:
        key = address[len("aws_route.private_nat"):]
        assert plan.targets(address, "nat_gateway_id") == {f"aws_nat_gateway.this{key}"}
        assert all(v["destination_cidr_block"] == "0.0.0.0/0" for v in routes.values())


def test_no_security_group_admits_the_internet(plan: PlanSummary) -> None:
    vpc = ipaddress.ip_network(plan.variables["vpc_cidr"])
    rules = plan.of_type("aws_vpc_security_group_ingress_rule")
    assert rules and all(ipaddress.ip_network(v["cidr_ipv4"]).subnet_of(vpc) for v in rules.values()), rules


def _rules(plan: PlanSummary, kind: str, group: str) -> dict[str, dict[str, Any]]:
    """The rules of one of the stack's security groups (rule keys start with the group's key)."""
    return {a: v for a, v in plan.of_type(f"aws_vpc_security_group_{kind}_rule").items()
            if a.split('["', 1)[1].startswith(f"{group}_")}


def _peer(plan: PlanSummary, address: str, rule: dict[str, Any]) -> str:
    """A rule's peer: its CIDR, or which kind of reference (known only after apply)."""
    unknown = plan.unknown.get(address, {})
    if unknown.get("prefix_list_id"):
        return "prefix list"
    if unknown.get("referenced_security_group_id"):
        return "security group"
    return str(rule.get("cidr_ipv4"))


def test_the_endpoints_admit_https_only_from_the_private_subnets(plan: PlanSummary) -> None:
    private = {v["cidr_block"] for v in plan.of_type("aws_subnet").values() if v["tags"]["Tier"] == "private"}
    rules = _rules(plan, "ingress", "endpoints")
    assert {_peer(plan, a, v) for a, v in rules.items()} == private, rules
    assert all((v["from_port"], v["to_port"]) == (443, 443) for v in rules.values())


@pytest.mark.parametrize(("group", "peers"), [("processor", {"prefix list", "security group"}),
                                              ("insights", {"prefix list"})])
def test_the_functions_send_https_only_to_the_tables_prefix_list_and_the_endpoints(plan: PlanSummary, group: str,
                                                                                 peers: set[str]) -> None:
    rules = _rules(plan, "egress", group)
    assert {_peer(plan, a, v) for a, v in rules.items()} == peers, rules
    assert all((v["from_port"], v["to_port"]) == (443, 443) for v in rules.values())
    assert plan.targets(next(iter(rules)), "prefix_list_id") == {"aws_vpc_endpoint.dynamodb"}


def test_the_failure_queue_is_reached_through_an_interface_endpoint(plan: PlanSummary) -> None:
    endpoint = plan.values["aws_vpc_endpoint.sqs"]
    assert endpoint["vpc_endpoint_type"] == "Interface" and endpoint["service_name"].endswith(".sqs")
    assert endpoint["private_dns_enabled"] is True
    assert _placements(plan)["aws_vpc_endpoint.sqs"] == {"aws_subnet.private"}


@pytest.mark.parametrize(("endpoint", "resource"), [("dynamodb", ":table/{prefix}-behaviour"),
                                                    ("kinesis", ":stream/{prefix}-events"),
                                                    ("sqs", ":{prefix}-stream-failures")])
def test_each_endpoint_policy_allows_only_this_stacks_resource(plan: PlanSummary, endpoint: str, resource: str) -> None:
    resource = resource.format(prefix=f"{plan.variables['project_name']}-{plan.variables['environment']}")
    policy = json.loads(plan.values[f"aws_vpc_endpoint.{endpoint}"]["policy"])
    statements = policy["Statement"]
    assert statements and all(s["Effect"] == "Allow" for s in statements)
    resources = {r for s in statements for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    assert resources and all(resource in r for r in resources), resources
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.endswith("*") for a in actions), actions


def test_nacls_open_the_internet_only_for_return_traffic_and_outbound_https(plan: PlanSummary) -> None:
    for address, rule in plan.of_type("aws_network_acl_rule").items():
        assert rule["rule_action"] == "allow" and rule["protocol"] == "tcp", address
        if rule["cidr_block"] == "0.0.0.0/0":
            ephemeral_in = not rule["egress"] and (rule["from_port"], rule["to_port"]) == (1024, 65535)
            https_out = rule["egress"] and (rule["from_port"], rule["to_port"]) == (443, 443)
            assert ephemeral_in or https_out, f"{address} opens {rule['from_port']}-{rule['to_port']} to the internet"


def test_nacls_admit_only_the_listener_and_https_from_the_vpc(plan: PlanSummary) -> None:
    inbound = {(r["from_port"], r["cidr_block"]) for r in plan.of_type("aws_network_acl_rule").values()
               if not r["egress"] and r["cidr_block"] != "0.0.0.0/0"}
    assert inbound == {(plan.variables["alb_listener_port"], plan.variables["vpc_cidr"]),
                       (443, plan.variables["vpc_cidr"])}


def test_ssh_stays_closed_unless_turned_on(plan: PlanSummary) -> None:
    assert plan.variables["enable_ssh_from_admin_cidr"] is False
    assert not any(r["from_port"] == 22 for r in plan.of_type("aws_network_acl_rule").values())
    assert not any(r["from_port"] == 22 for r in plan.of_type("aws_vpc_security_group_ingress_rule").values())


def test_dynamodb_is_reached_through_a_gateway_endpoint_on_every_private_route(plan: PlanSummary) -> None:
    endpoint = plan.values["aws_vpc_endpoint.dynamodb"]
    assert endpoint["vpc_endpoint_type"] == "Gateway" and endpoint["service_name"].endswith(".dynamodb")
    assert "aws_route_table.private" in plan.refs("aws_vpc_endpoint.dynamodb", "route_table_ids")
