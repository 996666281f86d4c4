"""ElastiCache and Aurora endpoint names mapped to the local servers."""

from __future__ import annotations

from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import EndpointMap
from tapharness.sandbox.network import Target

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


def test_a_name_added_while_the_map_is_being_read_is_in_the_next_map():
    endpoints = EndpointMap(AwsClients("http://127.0.0.1:9", "us-east-1"), redis_port=None, postgres_port=None)
    target = Target("internet", "pos.partner.sandbox.test", 443)
    read = endpoints.current

    def read_while_a_partner_starts() -> tuple[dict[str, str], dict[str, Target]]:
        answer = read()  # the map as it was when the read began ...
        endpoints.add("pos.partner.sandbox.test", "127.0.0.1:4443", target)  # ... and a stand-in added meanwhile
        return answer

    endpoints.current = read_while_a_partner_starts  # type: ignore[method-assign]
    assert "pos.partner.sandbox.test" not in endpoints("123456789012", "us-east-1")
    endpoints.current = read  # type: ignore[method-assign]
    assert endpoints("123456789012", "us-east-1")["pos.partner.sandbox.test"] == "127.0.0.1:4443"
