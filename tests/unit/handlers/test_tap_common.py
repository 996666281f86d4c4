"""tap_common: configuration, cached clients and secrets, Redis over TLS with the auth
token from Secrets Manager, PostgreSQL over TLS, batch helpers, structured logs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import redis
import tap_common.aws
from tap_common import batch, config, db, dynamo, logs, secrets
from tap_common.cache import redis_client
from tap_common.events import InvalidEvent, ViewingEvent

from .conftest import REGION, TABLES
from .factories import viewing


def test_missing_required_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAM_NAME", raising=False)
    with pytest.raises(config.ConfigError, match="STREAM_NAME"):
        config.require("STREAM_NAME")


def test_non_integer_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOP_N", "ten")
    with pytest.raises(config.ConfigError, match="TOP_N"):
        config.integer("TOP_N", 10)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)])
def test_flag_parses_common_spellings(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("REDIS_TLS", raw)
    assert config.flag("REDIS_TLS") is expected


def test_full_completion_ratio_defaults_to_the_contract_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FULL_COMPLETION_RATIO", raising=False)
    assert config.full_completion_ratio() == 0.9


def test_clients_are_created_once_per_container(aws: Any) -> None:
    assert tap_common.aws.client("dynamodb") is tap_common.aws.client("dynamodb")


def test_clients_use_standard_retries_and_timeouts(aws: Any) -> None:
    conf = tap_common.aws.client("sagemaker-runtime").meta.config
    assert (conf.retries["mode"], conf.read_timeout) == ("standard", 2.0)


def test_secret_is_fetched_once_per_container(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="s", SecretString=json.dumps({"auth_token": "t"})
    )["ARN"]
    client = tap_common.aws.client("secretsmanager")
    calls = []
    original = client.get_secret_value
    monkeypatch.setattr(client, "get_secret_value", lambda **kw: calls.append(kw) or original(**kw))
    assert secrets.secret_json(arn) == secrets.secret_json(arn) == {"auth_token": "t"}
    assert len(calls) == 1


def _redis_env(monkeypatch: pytest.MonkeyPatch, server: Any, token: str, tls: bool) -> None:
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="redis", SecretString=json.dumps({"auth_token": token})
    )["ARN"]
    monkeypatch.setenv("REDIS_HOST", server.host)
    monkeypatch.setenv("REDIS_PORT", str(server.port))
    monkeypatch.setenv("REDIS_TLS", "true" if tls else "false")
    monkeypatch.setenv("REDIS_AUTH_SECRET_ARN", arn)


def test_redis_over_tls_verifies_the_server_certificate(aws: Any, redis_tls_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _redis_env(monkeypatch, redis_tls_server, redis_tls_server.password, tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(redis_tls_server.ca_file))
    assert redis_client().ping() is True


def test_redis_over_tls_refuses_an_untrusted_certificate(aws: Any, redis_tls_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _redis_env(monkeypatch, redis_tls_server, redis_tls_server.password, tls=True)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis_client().ping()


def test_redis_auth_token_comes_from_the_secret(aws: Any, redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _redis_env(monkeypatch, redis_server, "wrong-token", tls=False)
    with pytest.raises(redis.AuthenticationError):
        redis_client().ping()


def test_database_connection_is_encrypted(postgres_env: Any) -> None:
    encrypted = db.in_transaction(lambda conn: conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    assert encrypted == [[True]]


def test_failed_work_rolls_back(postgres_env: Any) -> None:
    postgres_env.run("CREATE TABLE IF NOT EXISTS content_licenses (content_id text PRIMARY KEY)")

    def insert_then_fail(conn: Any) -> None:
        conn.run("INSERT INTO content_licenses VALUES ('x')")
        raise ValueError("stop")

    with pytest.raises(ValueError):
        db.in_transaction(insert_then_fail)
    assert postgres_env.run("SELECT count(*) FROM content_licenses") == [[0]]


def test_response_lists_each_failed_id_once_in_order() -> None:
    assert batch.response(["b", "a", "b"]) == {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}]}


def test_fifo_failures_include_later_messages_of_the_same_group() -> None:
    records = [("m0", "g1"), ("m1", "g2"), ("m2", "g1"), ("m3", "g2"), ("m4", "g1")]
    assert batch.fifo_failures(records, ["m2"]) == ["m2", "m4"]


def test_fifo_failures_keep_earlier_messages_of_the_group() -> None:
    assert batch.fifo_failures([("m0", "g"), ("m1", "g")], ["m1"]) == ["m1"]


def test_batch_get_spans_several_calls_for_more_than_100_keys(aws: Any) -> None:
    table = TABLES["CATALOG_TABLE"]
    for n in range(150):
        aws.put_item(TableName=table, Item={"content_id": {"S": f"c{n}"}})
    found = dynamo.batch_get({table: [{"content_id": f"c{n}"} for n in range(150)]})
    assert len(found[table]) == 150


def test_batch_get_retries_unprocessed_keys(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    table = TABLES["CATALOG_TABLE"]
    aws.put_item(TableName=table, Item={"content_id": {"S": "c1"}})
    client = tap_common.aws.client("dynamodb")
    original = client.batch_get_item
    calls = []

    def first_call_unprocessed(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        if len(calls) == 1:
            return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}
        return original(**kwargs)

    monkeypatch.setattr(client, "batch_get_item", first_call_unprocessed)
    assert dynamo.batch_get({table: [{"content_id": "c1"}]})[table] == [{"content_id": "c1"}]
    assert len(calls) == 2


def test_batch_put_returns_items_left_unprocessed(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    table = TABLES["CATALOG_TABLE"]
    client = tap_common.aws.client("dynamodb")
    monkeypatch.setattr(client, "batch_write_item", lambda **kw: {"UnprocessedItems": kw["RequestItems"]})
    monkeypatch.setattr(dynamo, "_backoff", lambda attempt: None)
    assert dynamo.batch_put(table, [{"content_id": "c1"}]) == [{"content_id": "c1"}]


def test_floats_are_stored_as_exact_decimals() -> None:
    assert dynamo.serialize({"score": 0.1}) == {"score": {"N": "0.1"}}


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        dynamo.serialize({"score": float("nan")})


def test_record_with_unknown_event_type_is_invalid() -> None:
    with pytest.raises(InvalidEvent) as caught:
        ViewingEvent.from_record(viewing(1, event_type="seek"))
    assert caught.value.field == "event_type"


def test_record_round_trips() -> None:
    record = viewing(1)
    assert ViewingEvent.from_record(record).to_record() == record


def test_logs_are_json_with_the_service_name(capsys: pytest.CaptureFixture[str]) -> None:
    logs.logger().info("hello", extra={"k": 1})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["message"], line["service"], line["k"]) == ("hello", "unit", 1)


def test_a_stream_batch_reports_only_its_first_failed_record() -> None:
    assert batch.stream_response(["1", "2", "3"], {"3", "2"}) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert batch.stream_response(["1", "2"], set()) == {"batchItemFailures": []}
