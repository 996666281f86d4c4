"""Fixtures for the handler unit tests: Lambda-style imports, moto, real Redis/PostgreSQL."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import redis
from hypothesis import settings
from moto import mock_aws
from pg8000.native import Connection

from tapharness import services
from tapharness.inventory import Inventory
from tapharness.lambdas import REGION, FakeContext, load_package, reset_container
from tapharness.sandbox.iam.catalog import UnmappedCall, action_for, iam_prefix, needs
from tapharness.sandbox.iam.wire import ApiCall

__all__ = ["REGION", "TABLES", "FakeContext", "load_package", "relaxed"]

# Hypothesis' per-example deadline trips on loaded CI machines; these properties are not about speed.
relaxed = settings(deadline=None)

TABLES = {
    "ACTIVITY_TABLE": "tap-test-user_activity",
    "RECOMMENDATIONS_TABLE": "tap-test-user_recommendations",
    "ACHIEVEMENTS_TABLE": "tap-test-user_achievements",
    "CATALOG_TABLE": "tap-test-content_catalog",
}


INVENTORY = Inventory.load()
SOURCES = {entry["source"] for entry in INVENTORY.functions.values()}


def _actions(service: str, signing_name: str, operation: str, params: dict[str, Any]) -> list[str]:
    call = ApiCall(service, signing_name, operation, REGION, "handler", params)
    try:
        return [need.action for need in needs(call, "123456789012")]
    except UnmappedCall:
        return [action_for(iam_prefix(call), operation)]


@pytest.fixture(autouse=True)
def calls_stay_within_the_inventory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AWS call the handler code makes needs only actions docs/iam_inventory.yaml lists for it."""
    source = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    seen: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        service = model.service_model
        for action in _actions(service.service_name, service.signing_name, model.name, params):
            seen.append((f"{service.service_name}.{model.name}", action))

    aws_module = importlib.import_module("tap_common.aws")  # importable once tapharness.lambdas has set the path
    original = aws_module.client

    def recording_client(service: str) -> Any:
        client = original(service)
        if not getattr(client, "_inventory_recorder", False):
            client.meta.events.register("before-parameter-build", record)
            client._inventory_recorder = True
        return client

    recording_client.cache_clear = original.cache_clear  # type: ignore[attr-defined]
    monkeypatch.setattr(aws_module, "client", recording_client)
    yield
    if source in SOURCES:
        allowed = INVENTORY.handler_actions(source)
        outside = sorted({f"{call} needs {action}" for call, action in seen if action not in allowed})
        assert not outside, f"{source} made calls docs/iam_inventory.yaml does not list: {outside}"


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture(autouse=True)
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment the stack gives every function, with dummy credentials and no
    endpoint override (moto intercepts in-process)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    common = {"ENV": "test", "PROJECT": "tap", "LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "unit", **TABLES}
    for name, value in common.items():
        monkeypatch.setenv(name, value)
    reset_container()
    yield
    reset_container()


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto for every AWS service, with the four DynamoDB tables of the contract."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        string = "S"
        definitions = {
            "ACTIVITY_TABLE": (("user_id", "timestamp"), True),
            "RECOMMENDATIONS_TABLE": (("user_id",), False),
            "ACHIEVEMENTS_TABLE": (("user_id", "badge_id"), False),
            "CATALOG_TABLE": (("content_id",), False),
        }
        for env, (keys, stream) in definitions.items():
            request: dict[str, Any] = {
                "TableName": TABLES[env],
                "KeySchema": [
                    {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"} for i, name in enumerate(keys)
                ],
                "AttributeDefinitions": [{"AttributeName": name, "AttributeType": string} for name in keys],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if stream:
                request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            ddb.create_table(**request)
        yield ddb


def _server_or_skip(start: Any, **kwargs: Any) -> Any:
    try:
        return start(**kwargs)
    except services.ServiceUnavailable as exc:
        pytest.skip(f"real server needed: {exc}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    server = _server_or_skip(services.start_redis)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_tls_server() -> Iterator[services.RedisServer]:
    server = _server_or_skip(services.start_redis, tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    server = _server_or_skip(services.start_postgres)
    yield server
    server.stop()


def _secret(name: str, value: dict[str, Any]) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


@pytest.fixture
def redis_env(aws: Any, redis_server: services.RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """REDIS_* pointing at the real server (auth token in Secrets Manager); the database
    is emptied before each test. Yields a plain client for arranging and asserting."""
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_TLS", "false")
    monkeypatch.setenv("REDIS_AUTH_SECRET_ARN", _secret("redis-auth", {"auth_token": redis_server.password}))
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, decode_responses=True
    )
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def postgres_env(aws: Any, postgres_server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """DB_* pointing at the real server (credentials in Secrets Manager), tables dropped
    before each test. Yields a pg8000 connection for arranging and asserting."""
    secret = {
        "username": postgres_server.user,
        "password": postgres_server.password,
        "engine": "postgres",
        "host": postgres_server.host,
        "port": postgres_server.port,
        "dbname": postgres_server.database,
    }
    monkeypatch.setenv("DB_SECRET_ARN", _secret("aurora", secret))
    monkeypatch.setenv("DB_HOST", postgres_server.host)
    monkeypatch.setenv("DB_PORT", str(postgres_server.port))
    monkeypatch.setenv("DB_NAME", postgres_server.database)
    conn = Connection(
        user=postgres_server.user,
        password=postgres_server.password,
        host=postgres_server.host,
        port=postgres_server.port,
        database=postgres_server.database,
        ssl_context=True,
    )
    conn.run("DROP TABLE IF EXISTS content_stats, processed_events, content_licenses")
    yield conn
    conn.close()


@contextmanager
def log_records(logger: Any) -> Iterator[list[logging.LogRecord]]:
    """The records a handler's Powertools logger emits meanwhile (with their ``extra`` fields)."""
    records: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(collector)
    try:
        yield records
    finally:
        logger.removeHandler(collector)
