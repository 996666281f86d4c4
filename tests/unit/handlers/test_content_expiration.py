"""content_expiration: the four Step Functions tasks against a real PostgreSQL, moto
(DynamoDB, Athena) and a real Redis."""

from __future__ import annotations

from datetime import date
from typing import Any

import boto3
import pytest
import tap_common.aws
from moto.athena.models import athena_backends
from tap_common import dynamo

from .conftest import REGION, TABLES, load_package

mod = load_package("content_expiration", "handler", "expiry")
ex = mod.expiry


def test_run_date_defaults_to_today() -> None:
    assert ex.run_date({}, today=date(2026, 11, 23)) == date(2026, 11, 23)


def test_run_date_comes_from_the_input() -> None:
    assert ex.run_date({"run_date": "2026-01-31"}) == date(2026, 1, 31)


@pytest.mark.parametrize("raw", ["2026-1-31", "31/01/2026", 20260131, "2026-02-30"])
def test_malformed_run_date_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError):
        ex.run_date({"run_date": raw})


def test_content_ids_are_distinct_and_sorted() -> None:
    assert ex.content_ids({"content_ids": ["b", "a", "b"]}) == ["a", "b"]


@pytest.mark.parametrize("task_input", [{"content_ids": "a"}, {"content_ids": ["ok", "x'; DROP"]}, {"content_ids": [1]}])
def test_invalid_content_ids_are_refused(task_input: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ex.content_ids(task_input)


def test_archive_query_is_a_partitioned_ctas_into_the_archive_prefix() -> None:
    table, sql = ex.archive_query("tap_db", "raw_viewing_events", "tap-archive", "viewing/", date(2026, 11, 23), ["a", "b"])
    assert table == "viewing_archive_20261123"
    assert "external_location = 's3://tap-archive/viewing/run_date=2026-11-23/'" in sql
    assert "partitioned_by = ARRAY['year', 'month']" in sql
    assert "WHERE content_id IN ('a', 'b')" in sql
    assert "PARTITION BY event_id" in sql


@pytest.mark.parametrize(
    ("database", "raw_table", "bucket"),
    [("db;", "raw", "bucket"), ("db", "raw\"x", "bucket"), ("db", "raw", "Bad_Bucket")],
)
def test_archive_query_refuses_unsafe_names(database: str, raw_table: str, bucket: str) -> None:
    with pytest.raises(ValueError):
        ex.archive_query(database, raw_table, bucket, "viewing/", date(2026, 11, 23), ["a"])


def test_find_expired_returns_licenses_ending_before_the_run_date(postgres_env: Any, context: Any) -> None:
    mod.handler.find_expired({"run_date": "2026-11-23"}, context)
    postgres_env.run(
        "INSERT INTO content_licenses VALUES ('gone', 'Gone', '2026-11-22'), ('today', 'Today', '2026-11-23'),"
        " ('later', 'Later', '2027-01-01'), ('open', 'Open', NULL), ('old', 'Old', '2020-01-01')"
    )
    assert mod.handler.find_expired({"run_date": "2026-11-23"}, context) == {
        "run_date": "2026-11-23",
        "content_ids": ["gone", "old"],
    }


def test_find_expired_without_run_date_uses_today(postgres_env: Any, context: Any) -> None:
    result = mod.handler.find_expired({}, context)
    assert result["run_date"] == ex.run_date({}).isoformat()


def put_catalog(content_id: str, **attributes: Any) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.put_item(TableName=TABLES["CATALOG_TABLE"], Item=dynamo.serialize({"content_id": content_id, **attributes}))


def catalog(content_id: str) -> dict[str, Any] | None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    item = ddb.get_item(TableName=TABLES["CATALOG_TABLE"], Key={"content_id": {"S": content_id}}).get("Item")
    return dynamo.deserialize(item) if item else None


def test_mark_expired_flags_catalog_items(aws: Any, context: Any) -> None:
    put_catalog("a", title="A")
    mod.handler.mark_expired({"run_date": "2026-11-23", "content_ids": ["a"]}, context)
    assert catalog("a")["expired"] is True


def test_mark_expired_does_not_create_unknown_content(aws: Any, context: Any) -> None:
    result = mod.handler.mark_expired({"run_date": "2026-11-23", "content_ids": ["ghost"]}, context)
    assert (catalog("ghost"), result["not_in_catalog"]) == (None, 1)


def test_mark_expired_leaves_already_expired_items_untouched(aws: Any, context: Any) -> None:
    put_catalog("a", expired=True, expired_at="2026-01-01T00:00:00.000Z")
    put_catalog("b")
    result = mod.handler.mark_expired({"run_date": "2026-11-23", "content_ids": ["a", "b"]}, context)
    assert (result["marked"], result["already_expired"]) == (1, 1)
    assert catalog("a")["expired_at"] == "2026-01-01T00:00:00.000Z"


def test_purge_cache_removes_ids_from_every_recommendation_set(redis_env: Any, context: Any) -> None:
    redis_env.zadd("recs:u1", {"gone": 1.0, "keep": 0.5})
    redis_env.zadd("recs:u2", {"gone": 0.2})
    redis_env.zadd("cf:keep", {"gone": 0.9, "other": 0.1})
    redis_env.zadd("cf:gone", {"keep": 0.9})
    redis_env.hset("content:gone", "title", "Gone")
    result = mod.handler.purge_cache({"run_date": "2026-11-23", "content_ids": ["gone"]}, context)
    assert redis_env.zrange("recs:u1", 0, -1) == ["keep"]
    assert redis_env.exists("recs:u2", "cf:gone", "content:gone") == 0
    assert redis_env.zrange("cf:keep", 0, -1) == ["other"]
    assert redis_env.smembers("expired:content") == {"gone"}
    assert result["entries_removed"] == 3


def test_purge_cache_with_nothing_expired_touches_nothing(redis_env: Any, context: Any) -> None:
    redis_env.zadd("recs:u1", {"a": 1.0})
    mod.handler.purge_cache({"run_date": "2026-11-23", "content_ids": []}, context)
    assert redis_env.keys("*") == ["recs:u1"]


@pytest.fixture
def athena_env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "ATHENA_WORKGROUP": "tap-test",
        "GLUE_DATABASE": "tap_test",
        "RAW_TABLE": "raw_viewing_events",
        "ARCHIVE_BUCKET": "tap-test-archive",
        "ARCHIVE_PREFIX": "viewing/",
    }.items():
        monkeypatch.setenv(name, value)
    athena = boto3.client("athena", region_name=REGION)
    athena.create_work_group(Name="tap-test", Configuration={"ResultConfiguration": {"OutputLocation": "s3://tap-test-results/"}})
    return athena


def test_archive_views_starts_the_ctas_in_the_workgroup(athena_env: Any, context: Any) -> None:
    result = mod.handler.archive_views({"run_date": "2026-11-23", "content_ids": ["a"]}, context)
    execution = athena_backends["123456789012"][REGION].executions[result["query_execution_id"]]
    assert execution.workgroup.name == "tap-test"
    assert execution.query.startswith('CREATE TABLE "tap_test"."viewing_archive_20261123"')


def test_archive_views_with_nothing_expired_starts_no_query(athena_env: Any, context: Any) -> None:
    result = mod.handler.archive_views({"run_date": "2026-11-23", "content_ids": []}, context)
    assert result["query_execution_id"] is None
    assert athena_backends["123456789012"][REGION].executions == {}


def test_archive_views_retry_sends_the_same_request_token(athena_env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("athena")
    original = client.start_query_execution
    tokens = []

    def capture(**kwargs: Any) -> Any:
        tokens.append(kwargs["ClientRequestToken"])
        return original(**kwargs)

    monkeypatch.setattr(client, "start_query_execution", capture)
    task_input = {"run_date": "2026-11-23", "content_ids": ["a", "b"]}
    mod.handler.archive_views(task_input, context)
    mod.handler.archive_views(dict(task_input, content_ids=["b", "a"]), context)
    mod.handler.archive_views(dict(task_input, run_date="2026-11-24"), context)
    assert tokens[0] == tokens[1] != tokens[2]
