"""The stack's ElastiCache and Aurora endpoint names, mapped to the sandbox's local Redis and PostgreSQL.

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
from typing import Any

from tapharness.sandbox.clients import AwsClients


def redis_hostnames(elasticache: Any) -> set[str]:
    """Every endpoint address of every replication group and cache cluster."""
    names: set[str] = set()
    for group in elasticache.describe_replication_groups()["ReplicationGroups"]:
        names.add((group.get("ConfigurationEndpoint") or {}).get("Address", ""))
        for node_group in group.get("NodeGroups") or []:
            names.add((node_group.get("PrimaryEndpoint") or {}).get("Address", ""))
            names.add((node_group.get("ReaderEndpoint") or {}).get("Address", ""))
            for member in node_group.get("NodeGroupMembers") or []:
                names.add((member.get("ReadEndpoint") or {}).get("Address", ""))
    for cluster in elasticache.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]:
        names.add((cluster.get("ConfigurationEndpoint") or {}).get("Address", ""))
        for node in cluster.get("CacheNodes") or []:
            names.add((node.get("Endpoint") or {}).get("Address", ""))
    names.discard("")
    return names


def postgres_hostnames(rds: Any) -> set[str]:
    """Every endpoint address of every DB cluster and instance."""
    names: set[str] = set()
    for cluster in rds.describe_db_clusters()["DBClusters"]:
        names.update(filter(None, [cluster.get("Endpoint"), cluster.get("ReaderEndpoint"),
                                   *(cluster.get("CustomEndpoints") or [])]))
    for instance in rds.describe_db_instances()["DBInstances"]:
        names.add((instance.get("Endpoint") or {}).get("Address", ""))
    names.discard("")
    return names


class EndpointMap:
    """``(account, region) -> {hostname: "127.0.0.1:port"}``, cached for ``ttl`` seconds.

    Every invocation asks (the map is part of a worker's environment), so once the map is
    older than ``ttl`` one caller reads it again while the others keep the map they have: four
    describe calls per ``ttl``, not four per invocation."""

    def __init__(self, clients: AwsClients, redis_port: int | None, postgres_port: int | None,
                 ttl: float = 2.0) -> None:
        self.clients = clients
        self.redis_port = redis_port
        self.postgres_port = postgres_port
        self.ttl = ttl
        self._cached: tuple[float, dict[str, str]] | None = None
        self._refreshing = threading.Lock()

    def current(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        if self.redis_port:
            for name in redis_hostnames(self.clients.client("elasticache")):
                mapping[name] = f"127.0.0.1:{self.redis_port}"
        if self.postgres_port:
            for name in postgres_hostnames(self.clients.client("rds")):
                mapping[name] = f"127.0.0.1:{self.postgres_port}"
        return mapping

    def __call__(self, account_id: str, region: str) -> dict[str, str]:
        cached = self._cached
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        # With a map in hand, don't wait for another caller's refresh; with none, wait for it.
        if not self._refreshing.acquire(blocking=cached is None):
            return cached[1]  # type: ignore[index]
        try:
            if self._cached is not cached:  # refreshed while this caller waited
                return self._cached[1]  # type: ignore[index]
            mapping = self.current()
            self._cached = (time.monotonic(), mapping)
            return mapping
        finally:
            self._refreshing.release()
