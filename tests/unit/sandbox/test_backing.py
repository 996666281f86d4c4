"""Redis and PostgreSQL behind the stack's endpoints: TLS names and credentials from the stack's secrets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pg8000.native
import pytest
import redis

from tapharness import services
from tapharness.sandbox import _bootstrap
from tapharness.sandbox.backing import BackingServices
from tapharness.sandbox.pollers import AwsClients

from .helpers import unique, zip_sources

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


def test_configure_applies_the_auth_token_and_master_user_from_the_stack_secrets(backing, aws, role_arn, sandbox):
    token = unique("token")
    redis_secret = aws("secretsmanager").create_secret(Name=unique("redis"),
                                                       SecretString=json.dumps({"auth_token": token}))["ARN"]
    db = {"username": "tapadmin", "password": unique("pw"), "dbname": "streaming"}
    db_secret = aws("secretsmanager").create_secret(Name=unique("db"), SecretString=json.dumps(db))["ARN"]
    aws("lambda").create_function(
        FunctionName=unique("fn"), Runtime="python3.12", Role=role_arn, Handler="h.h",
        Code={"ZipFile": zip_sources({"h.py": "def h(e, c):\n    return 1\n"})},
        Environment={"Variables": {"REDIS_AUTH_SECRET_ARN": redis_secret, "DB_SECRET_ARN": db_secret}})
    backing.configure(AwsClients(sandbox.endpoint_url, "us-east-1"))
    redis_client = redis.Redis(host="127.0.0.1", port=backing.redis.port, password=token, ssl=True,
                               ssl_cert_reqs="none")
    connection = pg8000.native.Connection(db["username"], password=db["password"], host="127.0.0.1",
                                          port=backing.postgres.port, database=db["dbname"])
    assert redis_client.ping() is True
    assert connection.run("SELECT current_user") == [["tapadmin"]]
    connection.close()
