"""ElastiCache and Aurora endpoint names mapped to the local servers."""

from __future__ import annotations

from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import EndpointMap

from .helpers import unique


def test_replication_group_and_cluster_endpoints_map_to_the_local_ports(aws, sandbox):
    group = aws("elasticache").create_replication_group(
        ReplicationGroupId=unique("rg")[:20], ReplicationGroupDescription="d", Engine="redis",
        CacheNodeType="cache.t4g.micro", NumCacheClusters=1)["ReplicationGroup"]
    cluster = aws("rds").create_db_cluster(
        DBClusterIdentifier=unique("db"), Engine="aurora-postgresql", MasterUsername="admin",
        MasterUserPassword="secret-password")["DBCluster"]
    mapping = EndpointMap(AwsClients(sandbox.endpoint_url, "us-east-1"), redis_port=16379, postgres_port=15432)
    current = mapping("123456789012", "us-east-1")
    primary = group["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    assert current[primary] == "127.0.0.1:16379"
    assert current[cluster["Endpoint"]] == "127.0.0.1:15432"
    assert current[cluster["ReaderEndpoint"]] == "127.0.0.1:15432"
