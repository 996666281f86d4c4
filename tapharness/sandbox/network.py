"""Network reachability: whether AWS's VPC would carry a function's connection, and how.

Every connection a function worker opens is checked against the EC2 state the stack really
created (read through the EC2 API, so whatever built it counts): the function's security groups
and subnets, the subnets' network ACLs in both directions (return traffic on the client's
ephemeral ports), the subnet's route table (local, gateway endpoints, NAT gateway with an
internet gateway behind it), interface endpoints with private DNS, and the destination's own
security groups (ElastiCache, Aurora, interface endpoints). A destination is one of

- an AWS API (``aws``, by the endpoint prefix botocore uses, e.g. ``dynamodb``, ``runtime.sagemaker``);
- a private host in a VPC (``private``: a cache or database endpoint, with its subnets and groups);
- a host on the internet (``internet``: a partner's API).

``reach`` answers with a ``Path``: the way the traffic goes, or the first missing piece (the rule,
route or association AWS would need). The worker (``_bootstrap``) turns a refused path into what
a client sees on AWS, a connect timeout, never an access error.

What AWS documents and this follows:
- Security groups are stateful, network ACLs are not: "you must add both inbound and outbound
  rules ... responses to allowed inbound traffic are subject to the rules for outbound traffic"
  (VPC User Guide, "Control subnet traffic with network access control lists"). Rules are
  evaluated "starting with the lowest numbered rule ... as soon as a rule matches traffic, it's
  applied"; the ``*`` rule denies the rest.
- Ephemeral ports: "AWS Lambda functions use ports 1024-65535" (same page, "Ephemeral ports"), so
  a return rule must open that whole range to the function's subnet.
- Network ACLs filter traffic entering and leaving a subnet, not within it.
- "Lambda functions connected to a VPC have no internet access by default ... connecting a
  function to a public subnet doesn't give it internet access or a public IP address" (Lambda
  Developer Guide, "Enable internet access for VPC-connected Lambda functions"): the way out is a
  NAT gateway whose subnet routes 0.0.0.0/0 to an internet gateway.
- Interface endpoints with private DNS: the service's default DNS name resolves to the endpoint's
  network interfaces in the VPC, so the traffic goes there (and nowhere else) and must pass the
  endpoint's security groups (PrivateLink Guide, "Access an AWS service using an interface VPC
  endpoint").
- Gateway endpoints (S3, DynamoDB) are routes to the service's prefix list in the route tables
  associated with the endpoint; a subnet whose route table is not associated reaches the service
  the way it reaches any public address (PrivateLink Guide, "Gateway endpoints").
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

ANYWHERE = "0.0.0.0/0"
PUBLIC_APIS = "*"  # the target of every AWS API without an endpoint in the VPC
HTTPS = 443
EPHEMERAL = (1024, 65535)

# VPC endpoint service suffixes whose botocore endpoint prefix differs.
_ENDPOINT_PREFIX = {
    "kinesis-streams": "kinesis",
    "kinesis-firehose": "firehose",
    "sagemaker.runtime": "runtime.sagemaker",
    "sagemaker.api": "api.sagemaker",
    "ecr.api": "api.ecr",
}


@dataclass(frozen=True)
class Path:
    """A connection's verdict: the way it goes (``via``) or what stops it (``missing``)."""

    via: str = ""
    missing: str = ""
    vpc: str = ""        # set when the traffic reaches the service through a VPC endpoint,
    endpoint: str = ""   # which is when AWS adds aws:SourceVpc and aws:SourceVpce to the request

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Target:
    """Where a connection goes: an AWS API, a private host in a VPC, or an internet host."""

    kind: str  # "aws" | "private" | "internet"
    name: str
    port: int = HTTPS
    vpc: str = ""
    subnets: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One security group rule (one peer)."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str | None = None
    group: str | None = None
    prefix_list: str | None = None

    def covers(self, port: int) -> bool:
        return self.protocol in ("-1", "tcp", "6") and (
            self.protocol == "-1" or self.from_port in (-1, None) or self.from_port <= port <= self.to_port)


@dataclass(frozen=True)
class AclEntry:
    number: int
    egress: bool
    protocol: str
    allow: bool
    cidr: str
    ports: tuple[int, int]


@dataclass
class Network:
    """The EC2 state that decides reachability, for one account and region."""

    subnets: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {vpc, cidr}
    groups: dict[str, tuple[list[Rule], list[Rule]]] = field(default_factory=dict)  # id -> (ingress, egress)
    acls: dict[str, tuple[str, list[AclEntry]]] = field(default_factory=dict)  # subnet id -> (acl id, entries)
    route_tables: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)  # subnet -> (rtb, routes)
    nats: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {subnet, state}
    igws: dict[str, set[str]] = field(default_factory=dict)  # id -> attached VPCs
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    prefix_lists: dict[str, str] = field(default_factory=dict)  # name -> id

    @classmethod
    def read(cls, ec2: Any) -> Network:
        """The current state, through the EC2 API."""
        net = cls()
        for subnet in _pages(ec2, "describe_subnets", "Subnets"):
            net.subnets[subnet["SubnetId"]] = {"vpc": subnet["VpcId"], "cidr": subnet["CidrBlock"]}
        for group in _pages(ec2, "describe_security_groups", "SecurityGroups"):
            net.groups[group["GroupId"]] = (_rules(group.get("IpPermissions", [])),
                                            _rules(group.get("IpPermissionsEgress", [])))
        for acl in _pages(ec2, "describe_network_acls", "NetworkAcls"):
            entries = sorted((AclEntry(int(e["RuleNumber"]), bool(e["Egress"]), str(e["Protocol"]),
                                       e["RuleAction"] == "allow", e.get("CidrBlock", ""),
                                       _acl_ports(e)) for e in acl.get("Entries", []) if e.get("CidrBlock")),
                             key=lambda e: e.number)
            for association in acl.get("Associations", []):
                net.acls[association["SubnetId"]] = (acl["NetworkAclId"], entries)
        main: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for table in _pages(ec2, "describe_route_tables", "RouteTables"):
            entry = (table["RouteTableId"], table.get("Routes", []))
            for association in table.get("Associations", []):
                if association.get("Main"):
                    main[table["VpcId"]] = entry
                elif association.get("SubnetId"):
                    net.route_tables[association["SubnetId"]] = entry
        for subnet_id, subnet in net.subnets.items():
            if subnet_id not in net.route_tables and subnet["vpc"] in main:
                net.route_tables[subnet_id] = main[subnet["vpc"]]
        for nat in _pages(ec2, "describe_nat_gateways", "NatGateways"):
            net.nats[nat["NatGatewayId"]] = {"subnet": nat.get("SubnetId", ""), "state": nat.get("State", "")}
        for igw in _pages(ec2, "describe_internet_gateways", "InternetGateways"):
            net.igws[igw["InternetGatewayId"]] = {a["VpcId"] for a in igw.get("Attachments", [])
                                                  if a.get("State") in ("available", "attached")}
        net.endpoints = [e for e in _pages(ec2, "describe_vpc_endpoints", "VpcEndpoints")
                         if e.get("State", "available").lower() in ("available", "pending")]
        for prefix_list in _pages(ec2, "describe_managed_prefix_lists", "PrefixLists"):
            net.prefix_lists[prefix_list["PrefixListName"]] = prefix_list["PrefixListId"]
        return net


def _pages(ec2: Any, operation: str, key: str) -> Iterable[dict[str, Any]]:
    if ec2.can_paginate(operation):
        for page in ec2.get_paginator(operation).paginate():
            yield from page.get(key, [])
    else:
        yield from getattr(ec2, operation)().get(key, [])


def _rules(permissions: list[dict[str, Any]]) -> list[Rule]:
    rules = []
    for permission in permissions:
        protocol = str(permission.get("IpProtocol", "-1"))
        low, high = int(permission.get("FromPort", -1)), int(permission.get("ToPort", -1))
        rules += [Rule(protocol, low, high, cidr=r["CidrIp"]) for r in permission.get("IpRanges", [])]
        rules += [Rule(protocol, low, high, group=g["GroupId"]) for g in permission.get("UserIdGroupPairs", [])]
        rules += [Rule(protocol, low, high, prefix_list=p["PrefixListId"]) for p in permission.get("PrefixListIds", [])]
    return rules


def _acl_ports(entry: dict[str, Any]) -> tuple[int, int]:
    if str(entry.get("Protocol")) == "-1" or "PortRange" not in entry:
        return (0, 65535)
    return (int(entry["PortRange"]["From"]), int(entry["PortRange"]["To"]))


def service_prefix(service_name: str) -> str:
    """The botocore endpoint prefix of a VPC endpoint service (``com.amazonaws.<region>.<x>``)."""
    suffix = service_name.split(".", 3)[3] if service_name.count(".") >= 3 else service_name
    return _ENDPOINT_PREFIX.get(suffix, suffix)


# --- peers and rules ----------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """The other end as a rule sees it: a subnet's CIDR and its security groups, or the internet."""

    cidr: str | None = None  # None: a public address
    groups: tuple[str, ...] = ()
    prefix_list: str | None = None

    def describe(self) -> str:
        return self.cidr or "the internet"


def _contains(outer: str, inner: str | None) -> bool:
    if inner is None:
        return ipaddress.ip_network(outer, strict=False).prefixlen == 0
    return ipaddress.ip_network(inner, strict=False).subnet_of(ipaddress.ip_network(outer, strict=False))  # type: ignore[arg-type]


def _overlaps(outer: str, inner: str | None) -> bool:
    if inner is None:
        return ipaddress.ip_network(outer, strict=False).prefixlen == 0
    return ipaddress.ip_network(outer, strict=False).overlaps(ipaddress.ip_network(inner, strict=False))


def _group_allows(net: Network, groups: Iterable[str], egress: bool, port: int, peer: Peer) -> bool:
    for group_id in groups:
        ingress, outbound = net.groups.get(group_id, ([], []))
        for rule in outbound if egress else ingress:
            if not rule.covers(port):
                continue
            if rule.cidr is not None and _contains(rule.cidr, peer.cidr):
                return True
            if rule.group is not None and rule.group in peer.groups:
                return True
            if rule.prefix_list is not None and rule.prefix_list == peer.prefix_list:
                return True
    return False


def _acl_allows(net: Network, subnet: str, egress: bool, ports: tuple[int, int], peer: Peer) -> bool:
    """Every port in ``ports`` to or from ``peer`` is allowed by the subnet's ACL (first match wins)."""
    if subnet not in net.acls:
        return True  # moto created none: the VPC's default ACL allows everything
    remaining = [ports]
    for entry in net.acls[subnet][1]:
        if entry.egress != egress or entry.protocol not in ("-1", "6", "tcp"):
            continue
        if not (_contains(entry.cidr, peer.cidr) if entry.allow else _overlaps(entry.cidr, peer.cidr)):
            continue
        low, high = entry.ports
        hit = [(max(a, low), min(b, high)) for a, b in remaining if max(a, low) <= min(b, high)]
        if hit and not entry.allow:
            return False
        remaining = [piece for a, b in remaining for piece in ((a, min(b, low - 1)), (max(a, high + 1), b))
                     if piece[0] <= piece[1]]
        if not remaining:
            return True
    return False


def _ports(low: int, high: int | None = None) -> str:
    return f"tcp {low}" if high is None or high == low else f"tcp {low}-{high}"


class _Hop:
    """Checks along one path, stopping at the first missing piece."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def subnet_pair(self, source: str, source_groups: tuple[str, ...], dest: str, dest_groups: tuple[str, ...],
                    port: int, what: str) -> str:
        """A TCP connection from one subnet's ENI to another's inside a VPC: both groups, both ACLs."""
        net = self.net
        src, dst = Peer(net.subnets[source]["cidr"], source_groups), Peer(net.subnets[dest]["cidr"], dest_groups)
        if not _group_allows(net, source_groups, True, port, dst):
            return (f"no egress rule of security groups {list(source_groups)} allows {_ports(port)} to {what} "
                    f"(groups {list(dest_groups)}, subnet {dest} {dst.cidr})")
        if dest_groups and not _group_allows(net, dest_groups, False, port, src):
            return (f"no ingress rule of {what}'s security groups {list(dest_groups)} allows {_ports(port)} from "
                    f"security groups {list(source_groups)} or subnet {source} {src.cidr}")
        if source == dest:
            return ""
        return (self.acl(source, True, (port, port), dst, f"to {what}")
                or self.acl(dest, False, (port, port), src, f"into {what}'s subnet")
                or self.acl(dest, True, EPHEMERAL, src, f"back from {what}")
                or self.acl(source, False, EPHEMERAL, dst, f"returning from {what}"))

    def acl(self, subnet: str, egress: bool, ports: tuple[int, int], peer: Peer, purpose: str) -> str:
        if _acl_allows(self.net, subnet, egress, ports, peer):
            return ""
        acl_id = self.net.acls[subnet][0]
        direction = "outbound" if egress else "inbound"
        return (f"network ACL {acl_id} of subnet {subnet} has no {direction} allow rule for {_ports(*ports)} "
                f"{'to' if egress else 'from'} {peer.describe()} ({purpose})")

    def internet(self, source: str, groups: tuple[str, ...], port: int, what: str,
                 prefix_list: str | None = None, gateway: bool = False) -> tuple[str, str]:
        """Out of the VPC to a public address, through a gateway endpoint's route or the subnet's
        default route: (via, missing). ``prefix_list`` is the service's AWS-managed prefix list (S3,
        DynamoDB): a security group rule naming it matches the service's addresses whichever
        way they are routed."""
        net = self.net
        public = Peer(None, prefix_list=prefix_list)
        if not _group_allows(net, groups, True, port, public):
            target = f"prefix list {prefix_list} or 0.0.0.0/0" if prefix_list else "0.0.0.0/0"
            return "", f"no egress rule of security groups {list(groups)} allows {_ports(port)} to {target} ({what})"
        missing = (self.acl(source, True, (port, port), public, what)
                   or self.acl(source, False, EPHEMERAL, public, f"answers from {what}"))
        if missing:
            return "", missing
        table_id, routes = net.route_tables.get(source, ("", []))
        if gateway:
            return f"gateway endpoint (route table {table_id})", ""
        default = next((r for r in routes if r.get("DestinationCidrBlock") == ANYWHERE
                        and r.get("State", "active") == "active"), None)
        if default is None:
            return "", f"route table {table_id or '(none)'} of subnet {source} has no route to 0.0.0.0/0 ({what})"
        if default.get("NatGatewayId"):
            return self.nat(source, default["NatGatewayId"], port, what)
        gateway = default.get("GatewayId", "")
        if gateway.startswith("igw-"):
            return "", (f"route table {table_id} sends 0.0.0.0/0 to internet gateway {gateway}, but a function's "
                        f"network interfaces have no public IP: it needs a NAT gateway ({what})")
        return "", f"route table {table_id} sends 0.0.0.0/0 to {gateway or default}, which the sandbox does not follow ({what})"

    def nat(self, source: str, nat_id: str, port: int, what: str) -> tuple[str, str]:
        net = self.net
        nat = net.nats.get(nat_id)
        if nat is None or nat["state"] not in ("available", "pending"):
            return "", f"NAT gateway {nat_id} does not exist or is not available ({what})"
        nat_subnet = nat["subnet"]
        src = Peer(net.subnets[source]["cidr"])
        public = Peer(None)
        missing = "" if nat_subnet == source else (
            self.acl(nat_subnet, False, (port, port), src, f"into NAT gateway {nat_id}'s subnet")
            or self.acl(nat_subnet, True, EPHEMERAL, src, f"NAT gateway {nat_id} answering the function"))
        missing = missing or (self.acl(nat_subnet, True, (port, port), public, f"NAT gateway {nat_id} to {what}")
                              or self.acl(nat_subnet, False, EPHEMERAL, public, f"answers from {what} to NAT {nat_id}"))
        if missing:
            return "", missing
        table_id, routes = net.route_tables.get(nat_subnet, ("", []))
        vpc = net.subnets[nat_subnet]["vpc"]
        for route in routes:
            gateway = route.get("GatewayId", "")
            if route.get("DestinationCidrBlock") == ANYWHERE and gateway.startswith("igw-"):
                if vpc in net.igws.get(gateway, set()):
                    return f"NAT gateway {nat_id} -> internet gateway {gateway}", ""
                return "", f"internet gateway {gateway} is not attached to {vpc} (NAT gateway {nat_id})"
        return "", (f"route table {table_id or '(none)'} of NAT gateway {nat_id}'s subnet {nat_subnet} has no "
                    f"0.0.0.0/0 route to an internet gateway ({what})")


def reach(net: Network, subnets: tuple[str, ...], groups: tuple[str, ...], target: Target) -> Path:
    """The path from a function (its VPC subnets and security groups; none: outside any VPC) to a target.

    Lambda may place a function's network interface in any of its subnets, and a destination may
    answer from any of its own, so every pair must work."""
    if not subnets:
        if target.kind == "private":
            return Path(missing=f"{target.name} is only reachable inside {target.vpc or 'its VPC'}; "
                                "the function is not connected to a VPC")
        return Path(via="public endpoint (function outside a VPC)")
    unknown = [s for s in subnets if s not in net.subnets]
    if unknown:
        return Path(missing=f"the function's subnets {unknown} do not exist")
    hop = _Hop(net)
    paths = []
    for subnet in subnets:
        path = _from_subnet(hop, subnet, groups, target)
        if not path.ok:
            return Path(missing=f"from subnet {subnet}: {path.missing}")
        paths.append(path)
    # One endpoint for every subnet: the calls carry its id (subnets split between an endpoint and
    # the NAT gateway carry none, as some of their calls would not).
    through = {(p.vpc, p.endpoint) for p in paths}
    vpc, endpoint = through.pop() if len(through) == 1 else ("", "")
    return Path(via="; ".join(dict.fromkeys(p.via for p in paths)), vpc=vpc, endpoint=endpoint)


def _from_subnet(hop: _Hop, subnet: str, groups: tuple[str, ...], target: Target) -> Path:
    net = hop.net
    vpc = net.subnets[subnet]["vpc"]
    if target.kind == "private":
        if target.vpc and target.vpc != vpc:
            return Path(missing=f"{target.name} is in {target.vpc}, the function in {vpc} (peering is not emulated)")
        for dest in target.subnets:
            if dest not in net.subnets:
                return Path(missing=f"{target.name}'s subnet {dest} does not exist")
            missing = hop.subnet_pair(subnet, groups, dest, target.groups, target.port, target.name)
            if missing:
                return Path(missing=missing)
        return Path(via=f"local ({target.name})")
    if target.kind == "aws":
        what = "AWS's public APIs" if target.name == PUBLIC_APIS else f"the {target.name} API"
        for endpoint in net.endpoints:
            if (endpoint.get("VpcId") == vpc and endpoint.get("VpcEndpointType") == "Interface"
                    and endpoint.get("PrivateDnsEnabled") and service_prefix(endpoint["ServiceName"]) == target.name):
                endpoint_groups = tuple(g["GroupId"] for g in endpoint.get("Groups", []))
                for dest in endpoint.get("SubnetIds", []):
                    missing = hop.subnet_pair(subnet, groups, dest, endpoint_groups, target.port,
                                              f"interface endpoint {endpoint['VpcEndpointId']}")
                    if missing:
                        return Path(missing=missing)
                return Path(via=f"interface endpoint {endpoint['VpcEndpointId']}", vpc=vpc,
                            endpoint=endpoint["VpcEndpointId"])
        table_id = net.route_tables.get(subnet, ("", []))[0]
        prefix_list = next((pl for name, pl in net.prefix_lists.items() if service_prefix(name) == target.name), None)
        for endpoint in net.endpoints:
            if (endpoint.get("VpcId") == vpc and endpoint.get("VpcEndpointType") == "Gateway"
                    and service_prefix(endpoint["ServiceName"]) == target.name
                    and table_id in endpoint.get("RouteTableIds", [])):
                _, missing = hop.internet(subnet, groups, target.port, what,
                                          net.prefix_lists.get(endpoint["ServiceName"], prefix_list), gateway=True)
                if missing:
                    return Path(missing=missing)
                return Path(via=f"gateway endpoint {endpoint['VpcEndpointId']} (route table {table_id})", vpc=vpc,
                            endpoint=endpoint["VpcEndpointId"])
        return Path(*hop.internet(subnet, groups, target.port, what, prefix_list))
    return Path(*hop.internet(subnet, groups, target.port, target.name))


# --- the view the sandbox keeps ----------------------------------------------------------

_GENERATION = [0]  # bumped by every change to the network or its endpoints the sandbox serves (iam.gate)
# The services whose changes move a path: the VPC itself, and the caches and databases in it.
NETWORK_SERVICES = frozenset({"ec2", "elasticache", "rds"})


def changed() -> None:
    """A change was made: the next verdicts read the network again (AWS applies a security group
    or route change within seconds; the sandbox at once)."""
    _GENERATION[0] += 1


def generation() -> int:
    return _GENERATION[0]


class NetworkView:
    """Reachability for the running sandbox: the network read again after every EC2 change (and
    at least every ``ttl`` seconds), the verdicts of a (subnets, groups) pair computed once per read."""

    def __init__(self, ec2: Any, ttl: float = 30.0) -> None:
        self.ec2 = ec2
        self.ttl = ttl
        self._read: tuple[float, Network] | None = None
        self._generation = _GENERATION[0]
        self._verdicts: dict[tuple[Any, ...], tuple[Network, dict[str, Target], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def network(self, fresh: bool = False) -> Network:
        read = self._read
        current = read is not None and not fresh and self._generation == _GENERATION[0]
        if current and time.monotonic() - read[0] < self.ttl:  # type: ignore[index]
            return read[1]  # type: ignore[index]
        # Only old (nothing changed since): one caller reads it again, the others keep the view they
        # have instead of queueing behind the describe calls. Changed: every caller waits for the read.
        if not self._lock.acquire(blocking=not current):
            return read[1]  # type: ignore[index]
        try:
            if (self._read is not read and self._read is not None and not fresh
                    and self._generation == _GENERATION[0]):
                return self._read[1]  # read by another caller while this one waited
            self._generation = _GENERATION[0]
            self._read = (time.monotonic(), Network.read(self.ec2))
            self._verdicts = {}
            return self._read[1]
        finally:
            self._lock.release()

    def verdicts(self, vpc_config: dict[str, Any] | None, hosts: dict[str, Target]) -> dict[str, Any]:
        """What a worker needs: a verdict (``[via, missing, vpc, endpoint]``) for AWS APIs in general,
        one per API with an endpoint in the VPC, and one per host."""
        subnets = tuple(sorted((vpc_config or {}).get("SubnetIds") or ()))
        groups = tuple(sorted((vpc_config or {}).get("SecurityGroupIds") or ()))
        net = self.network() if subnets else Network()
        if any(subnet not in net.subnets for subnet in subnets):
            net = self.network(fresh=True)  # subnets newer than the last read
        key = (subnets, groups, id(net), id(hosts))
        known = self._verdicts.get(key)
        if known is not None and known[0] is net and known[1] is hosts:  # not a reused id
            return known[2]

        def verdict(target: Target) -> list[str]:
            path = reach(net, subnets, groups, target)
            return [path.via, path.missing, path.vpc, path.endpoint]

        vpcs = {net.subnets[s]["vpc"] for s in subnets if s in net.subnets}
        names = {service_prefix(e["ServiceName"]) for e in net.endpoints if e.get("VpcId") in vpcs}
        found = {
            "aws_default": verdict(Target("aws", PUBLIC_APIS)),
            "aws": {name: verdict(Target("aws", name)) for name in sorted(names)},
            "hosts": {name: verdict(target) for name, target in sorted(hosts.items())},
        }
        self._verdicts[key] = (net, hosts, found)
        return found


def report(log_path: FilePath) -> dict[str, Any]:
    """Per function, the paths its connections used and the ones the network refused (from the
    workers' log): ``{function: {"used": {target: via}, "refused": {target: {missing, attempts}}}}``."""
    functions: dict[str, dict[str, Any]] = {}
    try:
        lines = FilePath(log_path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line a killed worker left half-written
        seen = functions.setdefault(entry["function"], {"used": {}, "refused": {}})
        target = f"{entry['kind']}:{entry['target']}"
        if entry["missing"]:
            refused = seen["refused"].setdefault(target, {"missing": entry["missing"], "attempts": 0})
            refused["missing"] = entry["missing"]
            refused["attempts"] += 1
        else:
            seen["used"][target] = entry["via"]
    return {"functions": functions,
            "refused": sum(len(f["refused"]) for f in functions.values())}


def format_report(data: dict[str, Any]) -> str:
    lines = []
    for function, seen in sorted(data["functions"].items()):
        lines.append(function)
        for target, via in sorted(seen["used"].items()):
            lines.append(f"  used     {target}: {via}")
        for target, refused in sorted(seen["refused"].items()):
            lines.append(f"  REFUSED  {target} ({refused['attempts']} attempts): {refused['missing']}")
    lines.append(f"{data['refused']} refused path(s)")
    return "\n".join(lines)
