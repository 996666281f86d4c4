"""One network mutation at a time, against a running dev sandbox of a stack: the flow that needs the
removed piece fails as it would on AWS (or, where AWS would route around it, keeps working by the
other path), and the sandbox's network report names the missing rule, route or association.

    python -m tapharness.sandbox up --stack hotel_booking
    python benchmarks/network_mutations.py --stack hotel_booking

Each mutation changes the VPC through the EC2 API as the administrator (a security group rule, a
route, a gateway endpoint's route tables, an interface endpoint, a network ACL entry; the sandbox
judges paths anew after every EC2 change), runs the flow, reads ``/_sandbox/network``, and puts the
piece back whatever happened (a deleted interface endpoint comes back as a new one). It prints one
row per mutation and exits 1 if a flow did not behave as on AWS or the report did not say why.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from iam_mutations import dev_sandbox, hotel_booking_flow, http

from tapharness import seed, video
from tapharness.deployed import Target

# --- changing the VPC (and putting it back) ---------------------------------------------------------


def group_id(target: Target, key: str) -> str:
    """The stack's security group named ``<prefix>-<key>``."""
    groups = target.client("ec2").describe_security_groups()["SecurityGroups"]
    [found] = [g["GroupId"] for g in groups if g["GroupName"].endswith(f"-{key}") and g["GroupName"] != "default"]
    return found


@contextmanager
def without_ingress(target: Target, key: str, port: int) -> Iterator[None]:
    ec2 = target.client("ec2")
    group = group_id(target, key)
    [permission] = [p for p in ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
                    if p.get("FromPort") == port]
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[permission])
    try:
        yield
    finally:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])


def _nat_routes(target: Target) -> list[tuple[str, str]]:
    tables = target.client("ec2").describe_route_tables()["RouteTables"]
    return [(t["RouteTableId"], r["NatGatewayId"]) for t in tables for r in t["Routes"]
            if r.get("NatGatewayId") and r.get("DestinationCidrBlock") == "0.0.0.0/0"]


@contextmanager
def without_nat_routes(target: Target) -> Iterator[None]:
    ec2 = target.client("ec2")
    routes = _nat_routes(target)
    for table, _ in routes:
        ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
    try:
        yield
    finally:
        for table, nat in routes:
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)


def _endpoint(target: Target, service: str) -> dict[str, Any]:
    [found] = [e for e in target.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
               if e["ServiceName"].endswith(f".{service}") and e.get("State", "").lower() != "deleted"]
    return found


@contextmanager
def gateway_endpoint_unassociated(target: Target, service: str) -> Iterator[None]:
    ec2 = target.client("ec2")
    endpoint = _endpoint(target, service)
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], RemoveRouteTableIds=endpoint["RouteTableIds"])
    try:
        yield
    finally:
        ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], AddRouteTableIds=endpoint["RouteTableIds"])


@contextmanager
def interface_endpoint_deleted(target: Target, service: str) -> Iterator[None]:
    ec2 = target.client("ec2")
    endpoint = _endpoint(target, service)
    ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])
    try:
        yield
    finally:
        ec2.create_vpc_endpoint(VpcId=endpoint["VpcId"], ServiceName=endpoint["ServiceName"], VpcEndpointType="Interface",
                                SubnetIds=endpoint["SubnetIds"], PrivateDnsEnabled=True,
                                SecurityGroupIds=[g["GroupId"] for g in endpoint["Groups"]])


@contextmanager
def without_acl_entry(target: Target, acl_name: str, number: int, egress: bool) -> Iterator[None]:
    ec2 = target.client("ec2")
    acls = ec2.describe_network_acls()["NetworkAcls"]
    [acl] = [a for a in acls if any(t["Key"] == "Name" and t["Value"].endswith(f"-{acl_name}") for t in a.get("Tags", []))]
    [entry] = [e for e in acl["Entries"] if e["RuleNumber"] == number and e["Egress"] == egress]
    ec2.delete_network_acl_entry(NetworkAclId=acl["NetworkAclId"], RuleNumber=number, Egress=egress)
    try:
        yield
    finally:
        ec2.create_network_acl_entry(NetworkAclId=acl["NetworkAclId"], RuleNumber=number, Protocol=entry["Protocol"],
                                     RuleAction=entry["RuleAction"], Egress=egress, CidrBlock=entry["CidrBlock"],
                                     PortRange=entry["PortRange"])


@contextmanager
def together(*changes: AbstractContextManager[None]) -> Iterator[None]:
    with changes[0]:
        if len(changes) > 1:
            with together(*changes[1:]):
                yield
        else:
            yield


# --- the report -------------------------------------------------------------------------------------


def refusals(target: Target) -> dict[tuple[str, str], tuple[int, str]]:
    report = target.control("GET", "network")
    return {(function, destination): (r["attempts"], r["missing"])
            for function, seen in report["functions"].items() for destination, r in seen["refused"].items()}


def paths(target: Target) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for seen in target.control("GET", "network")["functions"].values():
        for destination, via in seen["used"].items():
            used.setdefault(destination, set()).add(via)
    return used


@dataclass(frozen=True)
class Mutation:
    change: str
    apply: Callable[[Target], AbstractContextManager[None]]
    flow: Callable[[Target], str]
    as_on_aws: Callable[[str], bool]   # whether the flow's observation is AWS's
    named: str                         # what a new refusal must name, or "" when AWS routes around it
    rerouted: tuple[str, str] = ("", "")  # (destination, piece of the path it must now use) when named == ""


def run(target: Target, mutations: list[Mutation]) -> bool:
    ok = True
    print("| mutation | flow | `sandbox network` | as on AWS |")
    print("|---|---|---|---|")
    for mutation in mutations:
        before = refusals(target)
        with mutation.apply(target):  # the sandbox judges paths anew after every EC2 change
            outcome = mutation.flow(target)
            new = {key: value for key, value in refusals(target).items() if value[0] > before.get(key, (0, ""))[0]}
            used = paths(target)
        if mutation.named:
            hits = [(key, missing) for key, (_, missing) in new.items() if mutation.named in missing]
            report = (f"refused `{hits[0][0][1]}` for `{hits[0][0][0]}`: {hits[0][1]}" if hits
                      else f"no refusal naming {mutation.named} ({len(new)} other)")
            passed = bool(hits) and mutation.as_on_aws(outcome)
        else:
            destination, piece = mutation.rerouted
            vias = sorted(v for v in used.get(destination, set()) if piece in v)
            report = f"no refusal; `{destination}` via {vias[0]}" if vias and not new else f"refused: {list(new)}"
            passed = bool(vias) and not new and mutation.as_on_aws(outcome)
        ok &= passed
        print(f"| {mutation.change} | {outcome} | {report} | {'yes' if passed else 'NO'} |", flush=True)
    return ok


# --- the stacks' mutations -------------------------------------------------------------------------


def _failed(outcome: str) -> bool:
    """An HTTP flow answered with a server error (the function failed or timed out)."""
    return outcome.rsplit("→ ", 1)[-1].startswith("5")


def _video(target: Target) -> list[Mutation]:
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from flows import Clock, ViewingEvent, new_id

    def watch(t: Target) -> str:
        event = ViewingEvent("watch", new_id("user"), new_id("content"), 120.0, 1000.0, Clock().tick())
        return f"POST /watch → {http('POST', t.output('api_endpoints', 'watch'), event.body())}"

    connection = target.connect_db()
    seed.load_aurora(connection, seed.build())  # a catalogue, so cache_refresh has titles to write to Redis
    connection.close()

    def refresh(t: Target) -> str:
        try:
            return f"cache_refresh → wrote {video.refresh_cache(t).get('titles')} titles to Redis"
        except RuntimeError as exc:
            return f"cache_refresh → {'Task timed out' if 'timed out' in str(exc) else 'failed'}"

    return [
        Mutation("security group: Redis's ingress from the functions (`redis_from_lambda`) removed",
                 lambda t: without_ingress(t, "redis", 6379), refresh, lambda o: o.endswith(("timed out", "failed")),
                 "no ingress rule"),
        Mutation("security group: the interface endpoints' ingress (`endpoints_from_lambda`) removed",
                 lambda t: without_ingress(t, "endpoints", 443), watch, _failed,
                 "no ingress rule"),
        Mutation("interface endpoint: Kinesis's deleted (the NAT gateways remain)",
                 lambda t: interface_endpoint_deleted(t, "kinesis-streams"), watch, lambda o: o.endswith("202"), "",
                 ("aws:kinesis", "NAT gateway")),
        Mutation("interface endpoint: Kinesis's deleted and the NAT routes removed",
                 lambda t: together(interface_endpoint_deleted(t, "kinesis-streams"), without_nat_routes(t)), watch,
                 _failed, "no route to 0.0.0.0/0"),
    ]


def _hotel_booking(target: Target) -> list[Mutation]:
    book = hotel_booking_flow(target)
    return [
        Mutation("route: the private subnets' 0.0.0.0/0 → NAT gateway removed", without_nat_routes, book,
                 lambda o: o.startswith("POST /book → 201") and o.endswith(": 0"), "no route to 0.0.0.0/0"),
        Mutation("gateway endpoint: DynamoDB's route table associations removed (the NAT gateways remain)",
                 lambda t: gateway_endpoint_unassociated(t, "dynamodb"), book,
                 lambda o: o.startswith("POST /book → 201") and not o.endswith(": 0"), "",
                 ("aws:dynamodb", "NAT gateway")),
        Mutation("gateway endpoint: DynamoDB's route table associations and the NAT routes removed",
                 lambda t: together(gateway_endpoint_unassociated(t, "dynamodb"), without_nat_routes(t)), book,
                 lambda o: o.startswith("POST /book → 5"), "no route to 0.0.0.0/0"),
    ]


def _clickstream(target: Target) -> list[Mutation]:
    alb = str(target.output("alb_url")).rstrip("/")

    def page(t: Target) -> str:
        return f"GET /pages/home → {http('GET', f'{alb}/pages/home')}"

    return [
        Mutation("network ACL: the private subnets' inbound return rule (1024-65535 from 0.0.0.0/0) removed",
                 lambda t: without_acl_entry(t, "private", 120, False), page, _failed,
                 "inbound allow rule for tcp 1024-65535"),
        Mutation("gateway endpoint: DynamoDB's route table associations removed (the NAT gateways remain)",
                 lambda t: gateway_endpoint_unassociated(t, "dynamodb"), page, lambda o: o.endswith("200"), "",
                 ("aws:dynamodb", "NAT gateway")),
        Mutation("gateway endpoint: DynamoDB's route table associations and the NAT routes removed",
                 lambda t: together(gateway_endpoint_unassociated(t, "dynamodb"), without_nat_routes(t)), page,
                 _failed, "no route to 0.0.0.0/0"),
    ]


STACKS = {"video_streaming": _video, "hotel_booking": _hotel_booking, "clickstream": _clickstream}


def main() -> int:
    stack, target = dev_sandbox(__doc__, list(STACKS), "network_mutations")
    ok = run(target, STACKS[stack](target))
    print(json.dumps({"refused_after": len(refusals(target))}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
