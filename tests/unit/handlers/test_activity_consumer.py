"""activity_consumer: summary aggregation (pure) and the DynamoDB/S3 writes under
redelivery, poison records, conflicts and tumbling windows."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
import tap_common.aws
from botocore.exceptions import ClientError
from tap_common.events import ViewingEvent
from tap_common.milestones import WATCH_SECONDS_FOR_BADGE

from .conftest import REGION, TABLES, load_package
from .factories import kinesis_event, sequence_numbers, viewing

mod = load_package("activity_consumer", "handler", "aggregate")
agg = mod.aggregate
RAW_BUCKET = "tap-test-raw"


def events(*records: dict[str, Any]) -> list[ViewingEvent]:
    return [ViewingEvent.from_record(r) for r in records]


def test_watch_seconds_sum_forward_deltas_and_ignore_rewinds() -> None:
    summary = agg.apply_events(
        agg.Summary("u"),
        events(viewing(1, position=60), viewing(2, position=30), viewing(3, position=90)),
        0.9,
    )
    assert summary.watch_seconds == 120


def test_watch_seconds_are_tracked_per_content() -> None:
    summary = agg.apply_events(
        agg.Summary("u"),
        events(viewing(1, content="a", position=100), viewing(2, content="b", position=50), viewing(3, content="a", position=130)),
        0.9,
    )
    assert summary.watch_seconds == 180


@pytest.mark.parametrize(("position", "counted"), [(539, 0), (540, 1), (600, 1)])
def test_completed_count_needs_full_completion_ratio(position: int, counted: int) -> None:
    summary = agg.apply_events(agg.Summary("u"), events(viewing(1, event_type="complete", position=position)), 0.9)
    assert summary.completed_count == counted


def test_pause_at_the_end_is_not_a_completion() -> None:
    summary = agg.apply_events(agg.Summary("u"), events(viewing(1, event_type="pause", position=600)), 0.9)
    assert summary.completed_count == 0


def test_last_viewed_is_the_newest_event_whatever_the_batch_order() -> None:
    batch = events(viewing(2, content="new", timestamp="2026-11-23T07:00:00.000Z"), viewing(1, content="old"))
    summary = agg.apply_events(agg.Summary("u"), agg.chronological(batch), 0.9)
    assert (summary.last_viewed, summary.last_content_id) == ("2026-11-23T07:00:00.000Z", "new")


def test_a_forward_seek_credits_no_more_than_the_burst_allowance() -> None:
    seek = events(viewing(1, position=0, duration=86400), viewing(2, position=86400, duration=86400))
    summary = agg.apply_events(agg.Summary("u"), seek, 0.9)
    assert summary.watch_seconds == agg.WATCH_BURST_S + 1  # the burst plus the one second between the requests


def test_back_dated_client_timestamps_earn_no_wall_clock_time() -> None:
    received = "2026-11-23T06:00:00.000Z"
    days = events(*(viewing(n, content=f"title-{n}", position=86400, duration=86400,
                            timestamp=f"2026-11-{10 + n:02d}T06:00:00.000Z", received=received) for n in range(1, 6)))
    summary = agg.apply_events(agg.Summary("u"), days, 0.9)
    assert summary.watch_seconds == agg.WATCH_BURST_S


def test_watching_in_real_time_is_credited_in_full() -> None:
    beats = events(*(viewing(n, position=60 * n, duration=3600, timestamp=f"2026-11-23T06:{n:02d}:00.000Z")
                     for n in range(1, 41)))
    summary = agg.apply_events(agg.Summary("u"), beats, 0.9)
    assert summary.watch_seconds == 2400


def test_reports_ten_minutes_apart_credit_the_time_between_them() -> None:
    sparse = events(*(viewing(n, position=600 * n, duration=7200, timestamp=f"2026-11-23T06:{10 * n:02d}:00.000Z")
                      for n in range(1, 6)))
    summary = agg.apply_events(agg.Summary("u"), sparse, 0.9)
    # The first report has no earlier request to measure from: the burst allowance, then 4 × 600 s.
    assert summary.watch_seconds == agg.WATCH_BURST_S + 4 * 600


def test_late_event_moves_neither_position_nor_progress_back() -> None:
    newer = agg.apply_events(agg.Summary("u"), events(viewing(5, position=500)), 0.9)
    after_late = agg.apply_events(newer, events(viewing(2, position=100)), 0.9)
    assert (after_late.position_by_content, after_late.progress_by_content) == (
        {"content-1": 500}, {"content-1": pytest.approx(500 / 600)})
    assert after_late.watch_seconds == newer.watch_seconds


def test_late_event_does_not_make_the_next_delta_count_twice() -> None:
    summary = agg.apply_events(agg.Summary("u"), events(viewing(100, position=300)), 0.9)
    summary = agg.apply_events(summary, events(viewing(50, position=100)), 0.9)
    summary = agg.apply_events(summary, events(viewing(200, position=400)), 0.9)
    assert summary.watch_seconds == 400


def test_summary_keeps_the_most_recently_seen_titles_only() -> None:
    titles = events(*(viewing(n, content=f"title-{n:03d}", position=1) for n in range(1, agg.RECENT_TITLES + 21)))
    summary = agg.apply_events(agg.Summary("u"), titles, 0.9)
    kept = {f"title-{n:03d}" for n in range(21, agg.RECENT_TITLES + 21)}
    assert set(summary.progress_by_content) == set(summary.position_by_content) == set(summary.seen_by_content) == kept


def test_titles_of_a_summary_written_before_seen_titles_are_kept() -> None:
    legacy = agg.Summary.from_item("u", {"progress_by_content": {"old": 0.5}, "position_by_content": {"old": 300},
                                         "watch_seconds": 300, "version": 3})
    summary = agg.apply_events(legacy, events(viewing(1, content="new", position=60)), 0.9)
    assert set(summary.progress_by_content) == {"old", "new"}
    assert summary.watch_seconds == 360


def test_a_title_completed_twice_counts_once() -> None:
    again = events(viewing(1, event_type="complete", position=600), viewing(2, event_type="complete", position=600))
    assert agg.apply_events(agg.Summary("u"), again, 0.9).completed_count == 1


def test_a_title_completed_before_does_not_count_again() -> None:
    summary = agg.apply_events(agg.Summary("u", completed_count=1), events(viewing(1, event_type="complete", position=600)),
                               0.9, completed={"content-1"})
    assert summary.completed_count == 1


def test_chronological_drops_repeated_event_ids() -> None:
    assert len(agg.chronological(events(viewing(1), viewing(1), viewing(2)))) == 2


def test_summary_round_trips_through_its_item() -> None:
    summary = agg.apply_events(agg.Summary("u"), events(viewing(1, event_type="complete", position=600)), 0.9)
    assert agg.Summary.from_item("u", summary.to_item()) == summary


def test_window_totals_accumulate_across_invocations() -> None:
    first = agg.window_totals({}, events(viewing(1), viewing(2, event_type="pause")), duplicates=1, failed=0)
    second = agg.window_totals(first, events(viewing(3)), duplicates=0, failed=2)
    assert second == {
        "applied": 3,
        "by_type": {"watch": 2, "pause": 1},
        "duplicates": 1,
        "failed": 2,
        "invocations": 2,
    }


@pytest.fixture
def env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=RAW_BUCKET)
    monkeypatch.setenv("RAW_BUCKET", RAW_BUCKET)
    monkeypatch.setenv("RAW_PREFIX", "raw/")
    monkeypatch.setenv("FULL_COMPLETION_RATIO", "0.9")
    return aws


def table_state(ddb: Any) -> list[dict[str, Any]]:
    items = ddb.scan(TableName=TABLES["ACTIVITY_TABLE"])["Items"]
    return sorted(items, key=lambda i: (i["user_id"]["S"], i["timestamp"]["S"]))


def summary_of(ddb: Any, user: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=TABLES["ACTIVITY_TABLE"], Key={"user_id": {"S": user}, "timestamp": {"S": "SUMMARY"}})
    return item["Item"]


def num(attribute: dict[str, str]) -> Decimal:
    return Decimal(attribute["N"])


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return mod.handler.lambda_handler(event, context)


def test_batch_writes_event_items_and_summary(env: Any, context: Any) -> None:
    ten_minutes_later = "2026-11-23T06:10:00.000Z"
    run(kinesis_event([viewing(1, position=60),
                       viewing(2, event_type="complete", position=600, timestamp=ten_minutes_later)]), context)
    summary = summary_of(env, "user-1")
    assert num(summary["watch_seconds"]) == 600
    assert num(summary["completed_count"]) == 1
    assert num(summary["progress_by_content"]["M"]["content-1"]) == 1
    assert summary["last_viewed"]["S"] == ten_minutes_later
    assert sorted(item["timestamp"]["S"].split("#")[0] for item in table_state(env)) == [
        "2026-11-23T06:00:01.000Z", ten_minutes_later, "SUMMARY", "completed"]


def test_event_item_key_is_timestamp_and_event_id(env: Any, context: Any) -> None:
    record = viewing(1)
    run(kinesis_event([record]), context)
    keys = [item["timestamp"]["S"] for item in table_state(env)]
    assert f"{record['client_timestamp']}#{record['event_id']}" in keys


def test_successful_batch_reports_no_failures(env: Any, context: Any) -> None:
    assert run(kinesis_event([viewing(1), viewing(2, user="user-2")]), context) == {"batchItemFailures": []}


def test_same_batch_twice_leaves_the_same_state(env: Any, context: Any) -> None:
    records = [viewing(1, position=100), viewing(2, user="user-2"), viewing(3, event_type="complete", position=600)]
    run(kinesis_event(records), context)
    first = table_state(env)
    response = run(kinesis_event(records), context)
    assert response == {"batchItemFailures": []}
    assert table_state(env) == first


def test_redelivered_event_mixed_with_new_ones_counts_only_the_new(env: Any, context: Any) -> None:
    run(kinesis_event([viewing(1, position=100)]), context)
    run(kinesis_event([viewing(1, position=100), viewing(2, position=250)]), context)
    assert num(summary_of(env, "user-1")["watch_seconds"]) == 250


def test_same_event_twice_in_one_batch_is_applied_once(env: Any, context: Any) -> None:
    response = run(kinesis_event([viewing(1, position=100), viewing(1, position=100)]), context)
    assert response == {"batchItemFailures": []}
    assert num(summary_of(env, "user-1")["watch_seconds"]) == 100


@pytest.mark.parametrize(
    "poison",
    [b"not json", json.dumps({"event_id": "x"}).encode(), json.dumps(viewing(9, event_type="rewind")).encode()],
)
def test_poison_record_is_the_only_one_reported(env: Any, context: Any, poison: bytes) -> None:
    event = kinesis_event([viewing(1), poison, viewing(2, user="user-2")])
    response = run(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence_numbers(event)[1]}]}
    assert {i["user_id"]["S"] for i in table_state(env)} == {"user-1", "user-2"}


def test_failed_user_write_reports_only_that_users_records(
    env: Any, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = tap_common.aws.client("dynamodb")
    original = client.transact_write_items

    def fail_for_user_2(**kwargs: Any) -> Any:
        if any(item["Put"]["Item"]["user_id"]["S"] == "user-2" for item in kwargs["TransactItems"]):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "TransactWriteItems")
        return original(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", fail_for_user_2)
    event = kinesis_event([viewing(1), viewing(2, user="user-2"), viewing(3), viewing(4, user="user-2")])
    seqs = sequence_numbers(event)
    response = run(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs[1]}, {"itemIdentifier": seqs[3]}]}
    assert {i["user_id"]["S"] for i in table_state(env)} == {"user-1"}


def test_more_events_than_one_transaction_holds_are_all_applied(env: Any, context: Any) -> None:
    records = [viewing(n, position=n) for n in range(1, 151)]
    assert run(kinesis_event(records), context) == {"batchItemFailures": []}
    summary = summary_of(env, "user-1")
    assert (num(summary["watch_seconds"]), num(summary["version"])) == (150, 2)
    assert len(table_state(env)) == 151


def test_stale_summary_is_re_read_and_the_write_retried(env: Any) -> None:
    table = TABLES["ACTIVITY_TABLE"]
    mod.handler._write_user(table, mod.handler.UserState(agg.Summary("user-1")), events(viewing(1, position=100)), 0.9)
    stale = mod.handler.UserState(agg.Summary("user-1"))
    result = mod.handler._write_user(table, stale, events(viewing(2, position=160)), 0.9)
    assert len(result.applied) == 1
    summary = summary_of(env, "user-1")
    assert (num(summary["watch_seconds"]), num(summary["version"])) == (160, 2)


def test_one_title_completed_in_many_batches_counts_once(env: Any, context: Any) -> None:
    for n in range(1, 4):
        run(kinesis_event([viewing(n, event_type="complete", position=600)]), context)
    assert num(summary_of(env, "user-1")["completed_count"]) == 1


def test_ten_titles_completed_count_ten_with_one_marker_each(env: Any, context: Any) -> None:
    run(kinesis_event([viewing(n, content=f"title-{n}", event_type="complete", position=600) for n in range(10)]),
        context)
    markers = sorted(item["timestamp"]["S"] for item in table_state(env) if item["timestamp"]["S"].startswith("completed#"))
    assert markers == sorted(f"completed#title-{n}" for n in range(10))
    assert num(summary_of(env, "user-1")["completed_count"]) == 10


def test_a_redelivered_completion_after_later_ones_counts_nothing_twice(env: Any, context: Any) -> None:
    first = viewing(1, content="a", event_type="complete", position=600)
    run(kinesis_event([first]), context)
    run(kinesis_event([viewing(2, content="b", event_type="complete", position=600)]), context)
    run(kinesis_event([first, viewing(3, content="c", event_type="complete", position=600)]), context)
    assert num(summary_of(env, "user-1")["completed_count"]) == 3


def test_completions_beyond_one_transaction_are_all_recorded(env: Any, context: Any) -> None:
    many = [viewing(n, content=f"title-{n}", event_type="complete", position=600) for n in range(120)]
    assert run(kinesis_event(many), context) == {"batchItemFailures": []}
    assert num(summary_of(env, "user-1")["completed_count"]) == 120


@pytest.fixture
def achievements_queue(env: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    url = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName="tap-test-achievements.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    monkeypatch.setenv("ACHIEVEMENTS_QUEUE_URL", url)
    return url


def announced(queue_url: str) -> list[str]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["event_id"] for m in messages.get("Messages", [])]


def watched_before(ddb: Any, seconds: float) -> None:
    ddb.put_item(TableName=TABLES["ACTIVITY_TABLE"], Item={
        "user_id": {"S": "user-1"}, "timestamp": {"S": "SUMMARY"}, "watch_seconds": {"N": str(seconds)},
        "version": {"N": "1"}})


def test_crossing_a_watch_time_threshold_is_announced_to_the_achievements_queue(
        env: Any, context: Any, achievements_queue: str) -> None:
    watched_before(env, WATCH_SECONDS_FOR_BADGE - 30)
    crossing = viewing(1, position=60)
    assert run(kinesis_event([crossing]), context) == {"batchItemFailures": []}
    assert announced(achievements_queue) == [crossing["event_id"]]


@pytest.mark.parametrize("before", [WATCH_SECONDS_FOR_BADGE - 100, WATCH_SECONDS_FOR_BADGE],
                         ids=["stays below", "already over"])
def test_watch_time_that_crosses_no_threshold_is_not_announced(
        env: Any, context: Any, achievements_queue: str, before: float) -> None:
    watched_before(env, before)
    run(kinesis_event([viewing(1, position=60)]), context)
    assert announced(achievements_queue) == []


def test_a_milestone_that_cannot_be_announced_fails_its_records_and_writes_nothing(
        env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACHIEVEMENTS_QUEUE_URL", f"https://sqs.{REGION}.amazonaws.com/123456789012/missing.fifo")
    watched_before(env, WATCH_SECONDS_FOR_BADGE - 30)
    event = kinesis_event([viewing(1, position=60)])
    response = run(event, context)
    assert response["batchItemFailures"] == [{"itemIdentifier": sequence_numbers(event)[0]}]
    assert num(summary_of(env, "user-1")["watch_seconds"]) == WATCH_SECONDS_FOR_BADGE - 30


def test_raw_events_land_in_s3_as_json_lines(env: Any, context: Any) -> None:
    event = kinesis_event([viewing(1), viewing(2)])
    run(event, context)
    s3 = boto3.client("s3", region_name=REGION)
    [obj] = s3.list_objects_v2(Bucket=RAW_BUCKET)["Contents"]
    assert obj["Key"] == f"raw/year=2026/month=11/day=23/shardId-000000000000-{sequence_numbers(event)[0]}.json"
    lines = s3.get_object(Bucket=RAW_BUCKET, Key=obj["Key"])["Body"].read().decode().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [viewing(1)["event_id"], viewing(2)["event_id"]]


def test_raw_store_failure_reports_the_written_records(env: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAW_BUCKET", "missing-bucket")
    event = kinesis_event([viewing(1), viewing(2)])
    response = run(event, context)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == sequence_numbers(event)


def test_window_state_is_returned_with_the_failures(env: Any, context: Any) -> None:
    event = kinesis_event([viewing(1), b"poison"], window=True, state={"applied": 5, "invocations": 1})
    response = run(event, context)
    assert response["batchItemFailures"] == [{"itemIdentifier": sequence_numbers(event)[1]}]
    assert (response["state"]["applied"], response["state"]["failed"], response["state"]["invocations"]) == (6, 1, 2)


def test_window_counts_only_newly_applied_events(env: Any, context: Any) -> None:
    run(kinesis_event([viewing(1)]), context)
    response = run(kinesis_event([viewing(1), viewing(2)], window=True), context)
    assert (response["state"]["applied"], response["state"]["duplicates"]) == (1, 1)


def test_final_window_invoke_emits_metrics_and_clears_state(
    env: Any, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    state = {"applied": 7, "by_type": {"watch": 7}, "duplicates": 2, "failed": 0, "invocations": 3}
    response = run(kinesis_event([], window=True, state=state, final=True), context)
    assert response == {"state": {}, "batchItemFailures": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [metrics] = [m for m in emf if "WindowEventsApplied" in m]
    assert (metrics["WindowEventsApplied"], metrics["WindowEvents_watch"], metrics["WindowDuplicates"]) == ([7], [7], [2])
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "tap"


def test_decimal_progress_is_stored_for_each_event(env: Any, context: Any) -> None:
    run(kinesis_event([viewing(1, position=150, duration=600)]), context)
    [event_item] = [i for i in table_state(env) if i["timestamp"]["S"] != "SUMMARY"]
    assert num(event_item["progress"]) == Decimal("0.25")
