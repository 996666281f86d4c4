"""Redis and PostgreSQL behind the stack's endpoints: TLS names, and the credentials the stack set
on its replication group and DB cluster."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pg8000.native
import pytest
import redis

from tapharness import services
from tapharness.sandbox import _bootstrap
from tapharness.sandbox.backing import BackingServices
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import EndpointMap

from .helpers import unique

ENDPOINT = "master.tap-dev-redis.abc123.use1.cache.amazonaws.com"


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackingServices]:
    servers = BackingServices(tmp_path_factory.mktemp("services"))
    try:
        servers.start()
    except services.ServiceUnavailable as exc:
        pytest.skip(f"Redis/PostgreSQL unavailable: {exc}")
    yield servers
    servers.stop()


@pytest.fixture
def endpoint_resolves_locally(backing: BackingServices) -> Iterator[None]:
    original = socket.getaddrinfo
    _bootstrap.install_host_map({ENDPOINT: f"127.0.0.1:{backing.redis.port}"})
    yield
    socket.getaddrinfo = original


def test_redis_certificate_verifies_for_the_stack_endpoint_name(backing, endpoint_resolves_locally):
    backing.reissue_redis_certificate([ENDPOINT])
    client = redis.Redis(host=ENDPOINT, port=6379, password=backing.redis_password, ssl=True,
                         ssl_cert_reqs="required", ssl_ca_certs=str(backing.ca.bundle_file), ssl_check_hostname=True)
    assert client.ping() is True


def test_configure_applies_the_auth_token_and_master_user_the_stack_set_on_its_resources(sandbox, aws):
    token = unique("token")
    aws("elasticache").create_replication_group(
        ReplicationGroupId=unique("cache")[:40], ReplicationGroupDescription="cache", Engine="redis",
        CacheNodeType="cache.t3.micro", NumCacheClusters=1, TransitEncryptionEnabled=True, AuthToken=token)
    db = {"username": "tapadmin", "password": unique("pw"), "dbname": "streaming"}
    aws("rds").create_db_cluster(DBClusterIdentifier=unique("aurora")[:60], Engine="aurora-postgresql",
                                 MasterUsername=db["username"], MasterUserPassword=db["password"],
                                 DatabaseName=db["dbname"])
    ports = sandbox.control("POST", "services")
    redis_client = redis.Redis(host="127.0.0.1", port=ports["redis"]["port"], password=token, ssl=True,
                               ssl_cert_reqs="none")
    connection = pg8000.native.Connection(db["username"], password=db["password"], host="127.0.0.1",
                                          port=ports["postgres"]["port"], database=db["dbname"])
    assert redis_client.ping() is True
    assert connection.run("SELECT current_user") == [["tapadmin"]]
    connection.close()


# --- cluster mode ---------------------------------------------------------------------------

CONFIGURATION = "clustercfg.tap-dev-orders.abc123.use1.cache.amazonaws.com"
NODE = "tap-dev-orders-0001-001.tap-dev-orders.abc123.use1.cache.amazonaws.com"


@pytest.fixture
def cluster_names_resolve_locally(backing: BackingServices) -> Iterator[None]:
    original = socket.getaddrinfo
    address = f"127.0.0.1:{backing.redis_cluster.port}"
    _bootstrap.install_host_map({CONFIGURATION: address, NODE: address})
    admin = redis.Redis(host="127.0.0.1", port=backing.redis_cluster.port, password=backing.redis_password, ssl=True,
                        ssl_cert_reqs="none")
    admin.config_set("cluster-announce-hostname", NODE)
    admin.config_set("cluster-announce-tls-port", 6379)
    backing.reissue_redis_certificate([CONFIGURATION, NODE])
    yield
    socket.getaddrinfo = original


def test_the_cluster_refuses_commands_across_slots_and_takes_hash_tagged_keys(backing):
    client = redis.Redis(host="127.0.0.1", port=backing.redis_cluster.port, password=backing.redis_password,
                         ssl=True, ssl_cert_reqs="none")
    assert client.mset({"{player-1}:state": "a", "{player-1}:version": "1"}) is True
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        client.mset({"player-1:state": "a", "player-2:state": "b"})


def test_a_cluster_client_follows_cluster_slots_to_the_nodes_endpoint_name_over_verified_tls(
        backing, cluster_names_resolve_locally):
    client = redis.RedisCluster(host=CONFIGURATION, port=6379, password=backing.redis_password, ssl=True,
                                ssl_cert_reqs="required", ssl_ca_certs=str(backing.ca.bundle_file))
    assert [node.host for node in client.get_nodes()] == [NODE]
    client.geoadd("{zone-1}:drivers", (-0.1276, 51.5072, "d-1"))
    assert client.geosearch("{zone-1}:drivers", longitude=-0.1276, latitude=51.5072, radius=1, unit="km") == [b"d-1"]
    client.close()


def test_groups_in_cluster_mode_map_to_the_cluster_and_the_rest_to_the_plain_redis(aws):
    elasticache = aws("elasticache")
    plain = unique("plain")[:40]
    clustered = unique("clustered")[:40]
    by_parameter_group = unique("bygroup")[:40]
    elasticache.create_replication_group(ReplicationGroupId=plain, ReplicationGroupDescription="plain", Engine="redis",
                                         CacheNodeType="cache.t3.micro", NumCacheClusters=1)
    elasticache.create_replication_group(ReplicationGroupId=clustered, ReplicationGroupDescription="clustered",
                                         Engine="redis", CacheNodeType="cache.t3.micro", NumNodeGroups=2,
                                         ReplicasPerNodeGroup=1, ClusterMode="enabled",
                                         CacheParameterGroupName="default.redis7.cluster.on")
    elasticache.create_replication_group(ReplicationGroupId=by_parameter_group, ReplicationGroupDescription="group",
                                         Engine="redis", CacheNodeType="cache.t3.micro", NumNodeGroups=1,
                                         CacheParameterGroupName="default.redis7.cluster.on")
    endpoints = EndpointMap(client_of(aws), redis_port=1111, postgres_port=None, redis_cluster_port=2222)
    mapping = endpoints.current()[0]
    groups = {g["ReplicationGroupId"]: g for g in elasticache.describe_replication_groups()["ReplicationGroups"]}

    def ports_of(group_id: str) -> set[str]:
        group = groups[group_id]
        names = [(group.get("ConfigurationEndpoint") or {}).get("Address")]
        names += [(g.get("PrimaryEndpoint") or {}).get("Address") for g in group.get("NodeGroups") or []]
        return {mapping[name] for name in names if name}

    assert ports_of(plain) == {"127.0.0.1:1111"}
    assert ports_of(clustered) == {"127.0.0.1:2222"}
    assert ports_of(by_parameter_group) == {"127.0.0.1:2222"}


def client_of(aws) -> AwsClients:
    """The harness's clients of the sandbox that ``aws`` talks to."""
    return AwsClients(aws("elasticache").meta.endpoint_url, "us-east-1")
