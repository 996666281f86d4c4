"""The stack's ElastiCache, Aurora and Neptune endpoint names, mapped to the sandbox's local Redis,
PostgreSQL and Neptune gate (a replication group in cluster mode to the Redis Cluster, any other to
the plain Redis).

moto keeps ElastiCache replication groups and Aurora clusters as metadata only, with
endpoint names such as ``master.<group>.<id>.use1.cache.amazonaws.com`` and
``<cluster>.cluster-<id>.<region>.rds.amazonaws.com``. ``EndpointMap`` lists them through the
public API and maps every one to the local server that plays it (``127.0.0.1:<port>``); the
Lambda runner hands the map to each function worker (``SANDBOX_HOST_MAP``), whose bootstrap
applies it in ``socket.getaddrinfo``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from tapharness.sandbox import network
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.network import Target


def redis_targets(elasticache: Any) -> dict[str, Target]:
    """Every endpoint address of every replication group and cache cluster, with the subnets and
    security groups of the nodes behind it."""
    subnet_groups = {g["CacheSubnetGroupName"]: g for g in elasticache.describe_cache_subnet_groups()["CacheSubnetGroups"]}
    nodes: dict[str, Target] = {}  # by replication group (or cluster when it has none)
    targets: dict[str, Target] = {}
    for cluster in elasticache.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]:
        group = subnet_groups.get(cluster.get("CacheSubnetGroupName", ""), {})
        target = Target("private", cluster["CacheClusterId"], int(cluster.get("Port") or 6379), group.get("VpcId", ""),
                        tuple(s["SubnetIdentifier"] for s in group.get("Subnets", [])),
                        tuple(g["SecurityGroupId"] for g in cluster.get("SecurityGroups") or []))
        owner = cluster.get("ReplicationGroupId") or cluster["CacheClusterId"]
        known = nodes.get(owner)
        nodes[owner] = target if known is None else replace(
            known, subnets=tuple(dict.fromkeys(known.subnets + target.subnets)),
            groups=tuple(dict.fromkeys(known.groups + target.groups)))
        for address in [(cluster.get("ConfigurationEndpoint") or {}).get("Address", ""),
                        *((node.get("Endpoint") or {}).get("Address", "") for node in cluster.get("CacheNodes") or [])]:
            if address:
                targets[address] = replace(target, name=address)
    for group in elasticache.describe_replication_groups()["ReplicationGroups"]:
        addresses = [(group.get("ConfigurationEndpoint") or {}).get("Address", "")]
        for node_group in group.get("NodeGroups") or []:
            addresses.append((node_group.get("PrimaryEndpoint") or {}).get("Address", ""))
            addresses.append((node_group.get("ReaderEndpoint") or {}).get("Address", ""))
            addresses += [(m.get("ReadEndpoint") or {}).get("Address", "") for m in node_group.get("NodeGroupMembers") or []]
        behind = nodes.get(group["ReplicationGroupId"], Target("private", group["ReplicationGroupId"], 6379))
        for address in filter(None, addresses):
            targets.setdefault(address, replace(behind, name=address))
    return targets


def cluster_mode_groups(elasticache: Any) -> dict[str, str]:
    """Replication groups in cluster mode, by every endpoint address of theirs, with the hostname the
    node announces in CLUSTER SLOTS (its first node's endpoint, else the configuration endpoint).

    Cluster mode is what ``ClusterEnabled`` says, or what the group's parameter group says
    (``cluster-enabled yes``, as in ``default.redis7.cluster.on``), which moto does not read."""
    groups: dict[str, str] = {}
    clusters = elasticache.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    for group in elasticache.describe_replication_groups()["ReplicationGroups"]:
        members = [c for c in clusters if c.get("ReplicationGroupId") == group["ReplicationGroupId"]]
        parameter_groups = {(c.get("CacheParameterGroup") or {}).get("CacheParameterGroupName", "") for c in members}
        if not (group.get("ClusterEnabled") or any(_cluster_enabled(elasticache, name) for name in parameter_groups if name)):
            continue
        configuration = (group.get("ConfigurationEndpoint") or {}).get("Address", "")
        nodes = [n["Endpoint"]["Address"] for c in members for n in c.get("CacheNodes") or [] if n.get("Endpoint")]
        announced = min(nodes) if nodes else configuration
        addresses = [configuration, *nodes]
        for node_group in group.get("NodeGroups") or []:
            addresses.append((node_group.get("PrimaryEndpoint") or {}).get("Address", ""))
            addresses.append((node_group.get("ReaderEndpoint") or {}).get("Address", ""))
            addresses += [(m.get("ReadEndpoint") or {}).get("Address", "") for m in node_group.get("NodeGroupMembers") or []]
        groups.update({address: announced for address in addresses if address})
    return groups


def _cluster_enabled(elasticache: Any, parameter_group: str) -> bool:
    if parameter_group.endswith(".cluster.on"):
        return True
    try:
        parameters = elasticache.describe_cache_parameters(CacheParameterGroupName=parameter_group)["Parameters"]
    except ClientError:  # a default group moto does not model: its name said it all
        return False
    return any(p.get("ParameterName") == "cluster-enabled" and p.get("ParameterValue") == "yes" for p in parameters)


def postgres_targets(rds: Any) -> dict[str, Target]:
    """Every endpoint address of every PostgreSQL DB cluster and instance, with its subnets and security groups."""
    return db_targets(rds, _postgres)


def neptune_targets(rds: Any) -> dict[str, Target]:
    """Every endpoint address of every Neptune cluster and instance, with its subnets and security groups."""
    return db_targets(rds, lambda engine: engine == "neptune")


def db_targets(rds: Any, engine_wanted: Any) -> dict[str, Target]:
    """Every endpoint address of the DB clusters and instances whose engine ``engine_wanted(engine)`` takes."""
    subnet_groups = {g["DBSubnetGroupName"]: g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]}

    def target(name: str, port: Any, subnet_group: Any, groups: list[dict[str, Any]]) -> Target:
        group = subnet_group if isinstance(subnet_group, dict) else subnet_groups.get(subnet_group or "", {})
        return Target("private", name, int(port or 5432), group.get("VpcId", ""),
                      tuple(s["SubnetIdentifier"] for s in group.get("Subnets", [])),
                      tuple(g["VpcSecurityGroupId"] for g in groups or []))

    targets: dict[str, Target] = {}
    for cluster in rds.describe_db_clusters()["DBClusters"]:
        if not engine_wanted(cluster.get("Engine")):
            continue
        for address in filter(None, [cluster.get("Endpoint"), cluster.get("ReaderEndpoint"),
                                     *(cluster.get("CustomEndpoints") or [])]):
            targets[address] = target(address, cluster.get("Port"), cluster.get("DBSubnetGroup"),
                                      cluster.get("VpcSecurityGroups", []))
    for instance in rds.describe_db_instances()["DBInstances"]:
        if not engine_wanted(instance.get("Engine")):
            continue
        endpoint = instance.get("Endpoint") or {}
        if endpoint.get("Address"):
            targets[endpoint["Address"]] = target(endpoint["Address"], endpoint.get("Port"), instance.get("DBSubnetGroup"),
                                                  instance.get("VpcSecurityGroups", []))
    return targets


def _postgres(engine: str | None) -> bool:
    """Whether PostgreSQL plays this engine (not Neptune, a graph, nor MySQL)."""
    return (engine or "") in ("postgres", "aurora-postgresql")


def redis_hostnames(elasticache: Any) -> set[str]:
    """Every endpoint address of every replication group and cache cluster."""
    return set(redis_targets(elasticache))


class EndpointMap:
    """``(account, region) -> {hostname: "127.0.0.1:port"}``, and the network ``Target`` behind each
    name (its subnets and security groups, for reachability): read again after any ElastiCache, RDS
    or EC2 change the gate serves (``network.generation``), and at least every ``ttl`` seconds.

    Every invocation asks (the map is part of a worker's environment), so once the map is
    old one caller reads it again while the others keep the map they have: a few
    describe calls per change, not per invocation. ``add`` registers a host the sandbox serves
    itself (a partner's stand-in) under the public name the stack is given."""

    def __init__(self, clients: AwsClients, redis_port: int | None, postgres_port: int | None,
                 ttl: float = 30.0, redis_cluster_port: int | None = None) -> None:
        self.clients = clients
        self.redis_port = redis_port
        self.redis_cluster_port = redis_cluster_port
        self.postgres_port = postgres_port
        self.neptune_port: int | None = None  # the Neptune gate's, once a stack has a Neptune cluster
        self.ttl = ttl
        self._static: dict[str, tuple[str, Target]] = {}
        self._static_version = 0  # bumped by every add(): a map read before it is old
        self._cached: tuple[float, dict[str, str], dict[str, Target], int] | None = None
        self._generation = network.generation()
        self._refreshing = threading.Lock()

    def add(self, name: str, address: str, target: Target) -> None:
        self._static[name] = (address, target)
        self._static_version += 1

    def serve_neptune(self, port: int) -> None:
        """Neptune's endpoint names lead to ``port`` (the sandbox's Neptune gate) from now on."""
        self.neptune_port = port
        self._static_version += 1

    def current(self) -> tuple[dict[str, str], dict[str, Target]]:
        mapping = {name: address for name, (address, _) in self._static.items()}
        targets = {name: target for name, (_, target) in self._static.items()}
        if self.redis_port:
            elasticache = self.clients.client("elasticache")
            clustered = cluster_mode_groups(elasticache) if self.redis_cluster_port else {}
            for name, target in redis_targets(elasticache).items():
                port = self.redis_cluster_port if name in clustered else self.redis_port
                mapping[name], targets[name] = f"127.0.0.1:{port}", target
        if self.postgres_port:
            for name, target in postgres_targets(self.clients.client("rds")).items():
                mapping[name], targets[name] = f"127.0.0.1:{self.postgres_port}", target
        if self.neptune_port:
            for name, target in neptune_targets(self.clients.client("rds")).items():
                mapping[name], targets[name] = f"127.0.0.1:{self.neptune_port}", target
        return mapping, targets

    def _fresh(self) -> tuple[float, dict[str, str], dict[str, Target], int]:
        cached = self._cached
        if (cached and time.monotonic() - cached[0] < self.ttl and self._generation == network.generation()
                and cached[3] == self._static_version):
            return cached
        # With a map in hand, don't wait for another caller's refresh; with none, or with one older than
        # a name the sandbox added (a partner's stand-in: its first caller must find it), wait for it.
        stale_names = cached is not None and cached[3] != self._static_version
        if not self._refreshing.acquire(blocking=cached is None or stale_names):
            return cached  # type: ignore[return-value]
        try:
            latest = self._cached
            if latest is not cached and latest is not None and latest[3] == self._static_version:
                return latest  # refreshed while this caller waited
            self._generation = network.generation()
            version = self._static_version  # read before the map: an add() during the read makes it old again
            self._cached = (time.monotonic(), *self.current(), version)
            return self._cached
        finally:
            self._refreshing.release()

    def __call__(self, account_id: str, region: str) -> dict[str, str]:
        return self._fresh()[1]

    def targets(self) -> dict[str, Target]:
        return self._fresh()[2]
