"""Pytest fixtures every stack's handler unit tests share: the IAM inventory guard, real Redis
and PostgreSQL servers, Secrets Manager-backed connection settings and log capture.

A stack's ``tests/unit/handlers/conftest.py`` imports the fixtures it uses by name and adds
its own ``aws`` (moto with the stack's tables) and ``lambda_env`` fixtures.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from unittest import mock

import boto3
import botocore.loaders
import botocore.session
import pytest
import redis
from hypothesis import settings
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from pg8000.native import Connection

from tapharness import services
from tapharness.inventory import Inventory
from tapharness.lambdas import REGION, FakeContext
from tapharness.sandbox.iam.catalog import UnmappedCall, action_for, iam_prefix, needs
from tapharness.sandbox.iam.wire import ApiCall


@contextmanager
def emulated_aws() -> Iterator[None]:
    """moto's in-process AWS for a handler test, with DynamoDB transactions atomic as AWS's are.

    moto applies a TransactWriteItems item by item and, when one is cancelled, restores a copy of
    the tables taken at its start: two transactions of a handler's writer threads interleave, and
    one's restore brings back the other's cancelled writes. One at a time, they are all-or-nothing."""
    lock = threading.Lock()
    original = DynamoDBBackend.transact_write_items

    def atomic(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    with (mock_aws(), mock.patch.object(DynamoDBBackend, "transact_write_items", atomic),
          mock.patch.object(botocore.session, "create_loader", _shared_loader)):
        yield


@cache
def _shared_loader(search_paths_string: str | None = None) -> botocore.loaders.Loader:
    """One botocore loader for every session a test makes: mock_aws gives each test a new default
    session, and each session's own loader parsed the service models' JSON again (a third of the
    handler tests' time). The loader's cache holds only what botocore ships, read-only."""
    return botocore.loaders.create_loader(search_paths_string)


# Hypothesis' per-example deadline trips on loaded CI machines; these properties are not about speed.
relaxed = settings(deadline=None)

INVENTORY = Inventory.load()
SOURCES = {entry["source"] for entry in INVENTORY.functions.values()}


def _actions(service: str, signing_name: str, operation: str, region: str, params: dict[str, Any]) -> list[str]:
    call = ApiCall(service, signing_name, operation, region, "handler", params)
    try:
        return [need.action for need in needs(call, "123456789012")]
    except UnmappedCall:
        return [action_for(iam_prefix(call), operation)]


@pytest.fixture(autouse=True)
def calls_stay_within_the_inventory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AWS call the handler code makes needs only actions docs/iam_inventory.yaml lists for it.

    The module under test is named test_<source>.py after the function package it tests."""
    source = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    seen: list[tuple[str, str]] = []

    aws_module = importlib.import_module("tap_common.aws")  # importable once tapharness.lambdas has set the path
    original = aws_module.client

    def recording_client(service: str, region: str | None = None) -> Any:
        client = original(service, region)

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            svc = model.service_model
            for action in _actions(svc.service_name, svc.signing_name, model.name, client.meta.region_name, params):
                seen.append((f"{svc.service_name}.{model.name}", action))

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


def _server(start: Any, **kwargs: Any) -> Any:
    """A real server, or the tests that need it fail saying why (`make setup` installs Redis and
    PostgreSQL: a machine without them is broken, and a skip would count as nothing wrong)."""
    try:
        return start(**kwargs)
    except services.ServiceUnavailable as exc:
        pytest.fail(f"real server needed, run `make setup`: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    server = _server(services.start_redis)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_tls_server() -> Iterator[services.RedisServer]:
    server = _server(services.start_redis, tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    server = _server(services.start_postgres)
    yield server
    server.stop()


def put_secret(name: str, value: dict[str, Any]) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    return client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


@pytest.fixture
def redis_env(aws: Any, redis_server: services.RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """REDIS_* pointing at the real server (auth token in Secrets Manager); the database
    is emptied before each test. Yields a plain client for arranging and asserting."""
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_TLS", "false")
    monkeypatch.setenv("REDIS_AUTH_SECRET_ARN", put_secret("redis-auth", {"auth_token": redis_server.password}))
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, decode_responses=True
    )
    client.flushall()
    yield client
    client.close()


@contextmanager
def postgres_settings(server: services.PostgresServer, monkeypatch: pytest.MonkeyPatch,
                      drop_tables: tuple[str, ...]) -> Iterator[Connection]:
    """DB_* pointing at the real server (credentials in Secrets Manager), `drop_tables` dropped
    first. Yields a pg8000 connection for arranging and asserting."""
    secret = {
        "username": server.user,
        "password": server.password,
        "engine": "postgres",
        "host": server.host,
        "port": server.port,
        "dbname": server.database,
    }
    monkeypatch.setenv("DB_SECRET_ARN", put_secret("aurora", secret))
    monkeypatch.setenv("DB_HOST", server.host)
    monkeypatch.setenv("DB_PORT", str(server.port))
    monkeypatch.setenv("DB_NAME", server.database)
    conn = Connection(user=server.user, password=server.password, host=server.host, port=server.port,
                      database=server.database, ssl_context=True)
    conn.run(f"DROP TABLE IF EXISTS {', '.join(drop_tables)}")
    try:
        yield conn
    finally:
        conn.close()


def set_lambda_env(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """The environment the stack gives every function, with dummy credentials and no endpoint
    override (moto intercepts in-process)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


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
