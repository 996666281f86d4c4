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


def test_archive_query_reads_one_day_of_raw_events_into_parquet_partitions() -> None:
    table, sql = ex.archive_query("tap_db", "raw_viewing_events", "tap-archive", "viewing/", date(2026, 11, 22))
    assert table == "viewing_archive_20261122"
    assert "external_location = 's3://tap-archive/viewing/day=2026-11-22/'" in sql
    assert "partitioned_by = ARRAY['year', 'month']" in sql
    assert "WHERE year = '2026' AND month = '11' AND day = '22'" in sql
    assert "PARTITION BY event_id" in sql


def test_a_run_archives_the_day_before_it() -> None:
    assert ex.archived_day(date(2026, 3, 1)) == date(2026, 2, 28)


@pytest.mark.parametrize("after", [5, "x'; DROP"])
def test_invalid_page_cursor_is_refused(after: Any) -> None:
    with pytest.raises(ValueError):
        ex.page_after({"after": after})


@pytest.mark.parametrize("query_id", [5, "a b", "x" * 200])
def test_invalid_query_execution_id_is_refused(query_id: Any) -> None:
    with pytest.raises(ValueError):
        ex.query_execution_id({"query_execution_id": query_id})


@pytest.mark.parametrize(
    ("database", "raw_table", "bucket"),
    [("db;", "raw", "bucket"), ("db", "raw\"x", "bucket"), ("db", "raw", "Bad_Bucket")],
)
def test_archive_query_refuses_unsafe_names(database: str, raw_table: str, bucket: str) -> None:
    with pytest.raises(ValueError):
        ex.archive_query(database, raw_table, bucket, "viewing/", date(2026, 11, 23))


@pytest.fixture
def licences(postgres_env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EXPIRATION_LOOKBACK_DAYS", "7")
    mod.handler.find_expired({"run_date": "2026-11-23"}, context)  # creates the table
    return postgres_env


def test_find_expired_returns_licences_that_ended_within_the_lookback(licences: Any, context: Any) -> None:
    licences.run(
        "INSERT INTO content_licenses (content_id, title, license_expiry_date) VALUES ('gone', 'Gone', '2026-11-22'),"
        " ('today', 'Today', '2026-11-23'), ('later', 'Later', '2027-01-01'), ('open', 'Open', NULL),"
        " ('week', 'Week', '2026-11-16'), ('old', 'Old', '2026-11-15')"
    )
    assert mod.handler.find_expired({"run_date": "2026-11-23"}, context) == {
        "run_date": "2026-11-23", "content_ids": ["gone", "week"], "next_after": None}


def test_find_expired_pages_through_many_expired_licences(licences: Any, context: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod.handler, "PAGE_SIZE", 2)
    licences.run("INSERT INTO content_licenses (content_id, license_expiry_date)"
                 " SELECT 'c' || n, DATE '2026-11-20' FROM generate_series(1, 5) AS n")
    pages, after = [], None
    while True:
        page = mod.handler.find_expired({"run_date": "2026-11-23", **({"after": after} if after else {})}, context)
        pages.append(page["content_ids"])
        after = page["next_after"]
        if after is None:
            break
    assert pages == [["c1", "c2"], ["c3", "c4"], ["c5"]]


def test_find_expired_without_run_date_uses_today(licences: Any, context: Any) -> None:
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


def test_archive_views_starts_the_ctas_of_the_previous_day_in_the_workgroup(athena_env: Any, context: Any) -> None:
    result = mod.handler.archive_views({"run_date": "2026-11-23"}, context)
    execution = athena_backends["123456789012"][REGION].executions[result["query_execution_id"]]
    assert execution.workgroup.name == "tap-test"
    assert execution.query.startswith('CREATE TABLE "tap_test"."viewing_archive_20261122"')
    assert (result["table"], result["state"]) == ("viewing_archive_20261122", "QUEUED")


def test_archive_views_given_the_query_reports_its_state(athena_env: Any, context: Any) -> None:
    started = mod.handler.archive_views({"run_date": "2026-11-23"}, context)
    checked = mod.handler.archive_views({"run_date": "2026-11-23", "query_execution_id": started["query_execution_id"],
                                         "table": started["table"]}, context)
    assert {k: checked[k] for k in ("query_execution_id", "table")} == {k: started[k] for k in ("query_execution_id", "table")}
    assert checked["state"] in {"QUEUED", "RUNNING", "SUCCEEDED"}


def test_archive_views_retry_sends_the_same_request_token(athena_env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("athena")
    original = client.start_query_execution
    tokens = []

    def capture(**kwargs: Any) -> Any:
        tokens.append(kwargs["ClientRequestToken"])
        return original(**kwargs)

    monkeypatch.setattr(client, "start_query_execution", capture)
    mod.handler.archive_views({"run_date": "2026-11-23"}, context)
    mod.handler.archive_views({"run_date": "2026-11-23", "content_ids": ["x"]}, context)
    mod.handler.archive_views({"run_date": "2026-11-24"}, context)
    assert tokens[0] == tokens[1] != tokens[2]
