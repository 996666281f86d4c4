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
