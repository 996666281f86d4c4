"""reconciliation_checker: every copy of a recently changed night is compared with the table."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from .conftest import (
    REGION,
    REPLICA_REGION,
    ago,
    load_package,
    put_allocation,
    put_night,
    stay,
)

rc = load_package("reconciliation_checker", "handler", "consistency")
Night = rc.consistency.Night
GRACES = rc.consistency.Graces(cache_s=5, replica_s=10, pms_s=120)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def a_night(units: int = 4, version: int = 3, age_s: float = 600) -> Any:
    updated = (NOW - timedelta(seconds=age_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Night("h1", "deluxe-king", "2027-01-10", units, 10, version, updated)


def copies(sold: int = 6, cache: Any = "same", replica: Any = "same", pms: Any = "same", live: bool = True,
           units: int = 4) -> Any:
    """The copies of a_night(units=units); "same" copies agree with the table."""
    same = {"available_units": units, "version": 3}
    return rc.consistency.Copies(
        sold=sold, cache={"units": units, "version": 3} if cache == "same" else cache, cache_live=live,
        replicas={"eu-west-1": same if replica == "same" else replica}, pms=same if pms == "same" else pms)


def kinds(night: Any, found: Any) -> list[str]:
    return [f.kind for f in rc.consistency.compare(night, found, NOW, GRACES)]


def test_a_night_whose_copies_all_agree_has_no_finding() -> None:
    assert kinds(a_night(), copies()) == []


def test_more_units_allocated_than_exist_is_overbooking() -> None:
    assert kinds(a_night(units=0), copies(sold=11, units=0)) == ["overbooking"]


def test_available_units_that_disagree_with_the_allocations_are_an_accounting_finding() -> None:
    assert kinds(a_night(units=5), copies(sold=6, units=5)) == ["accounting"]


@pytest.mark.parametrize("cache", [{"units": 9, "version": 3}, {"units": 4, "version": 2}, None])
def test_a_cache_that_differs_after_its_grace_is_drift(cache: Any) -> None:
    assert kinds(a_night(), copies(cache=cache)) == ["cache_drift"]


def test_a_cache_still_within_its_one_second_sla_is_not_drift() -> None:
    assert kinds(a_night(age_s=1), copies(cache={"units": 5, "version": 2})) == []


def test_an_expired_snapshot_is_not_drift() -> None:
    assert kinds(a_night(), copies(cache=None, live=False)) == []


def test_a_replica_behind_for_longer_than_the_lag_alarm_is_drift() -> None:
    assert kinds(a_night(age_s=11), copies(replica={"available_units": 5, "version": 2}, pms="same")) == ["replica_drift"]
    assert kinds(a_night(age_s=3), copies(replica={"available_units": 5, "version": 2}, pms="same")) == []


def test_a_replica_with_the_same_version_but_other_units_has_diverged_at_once() -> None:
    assert kinds(a_night(age_s=1), copies(cache="same", replica={"available_units": 9, "version": 3})) == ["replica_drift"]


def test_a_pms_behind_for_longer_than_two_minutes_is_drift() -> None:
    assert kinds(a_night(age_s=121), copies(pms={"available_units": 5, "version": 2})) == ["pms_drift"]
    assert kinds(a_night(age_s=60), copies(pms=None)) == []


@pytest.fixture
def env(aws: Any, redis_env: Any, postgres_env: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {"REPLICA_REGIONS": REPLICA_REGION, "RECONCILE_WINDOW_SECONDS": "600", "MAX_HOT_KEYS": "500",
                        "CACHE_GRACE_SECONDS": "5", "REPLICA_LAG_SECONDS": "10", "PMS_GRACE_SECONDS": "120"}.items():
        monkeypatch.setenv(name, value)
    return {"redis": redis_env, "pg": postgres_env}


def consistent_night(env: dict[str, Any], units: int = 8, sold: int = 2, version: int = 3, age_s: float = 600) -> str:
    """A night whose every copy agrees: table, replica, cache, PMS record, hot mark."""
    updated = ago(age_s)
    pk = put_night("h1", "deluxe-king", stay(30), units, version=version, updated_at=updated)
    put_night("h1", "deluxe-king", stay(30), units, version=version, updated_at=updated, region=REPLICA_REGION)
    for i in range(sold):
        put_allocation(pk, f"b{i}")
    env["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": units, "version": version}))
    env["redis"].zadd("hot:changes", {pk: time.time()})
    env["pg"].run("CREATE TABLE pms_inventory (property_id text, room_id text, stay_date date, pms_id text, "
                  "available_units integer, version bigint, synced_at timestamptz, "
                  "PRIMARY KEY (property_id, room_id, stay_date))")
    env["pg"].run("INSERT INTO pms_inventory VALUES ('h1', 'deluxe-king', CAST(:d AS date), 'opera', :u, :v, now())",
                  d=stay(30), u=units, v=version)
    return pk


def test_the_hot_nights_are_checked_and_a_consistent_one_reports_nothing(env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    result = rc.handler.lambda_handler({}, context)
    assert (result["checked"], result["finding_count"]) == (1, 0), result


def test_a_cache_written_behind_the_tables_back_is_found(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    env["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": 9, "version": 3}))
    result = rc.handler.lambda_handler({}, context)
    assert [(f["kind"], f["pk"]) for f in result["findings"]] == [("cache_drift", pk)]


def test_a_replica_written_behind_the_tables_back_is_found(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    put_night("h1", "deluxe-king", stay(30), 1, version=3, updated_at=ago(600), region=REPLICA_REGION)
    result = rc.handler.lambda_handler({}, context)
    assert [(f["kind"], f["pk"], f["detail"]["region"]) for f in result["findings"]] == [
        ("replica_drift", pk, REPLICA_REGION)]


def test_a_night_the_pms_never_acknowledged_is_found(env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    env["pg"].run("DELETE FROM pms_inventory")
    result = rc.handler.lambda_handler({}, context)
    assert [f["kind"] for f in result["findings"]] == ["pms_drift"]


def test_before_any_pms_acknowledgement_the_missing_table_means_nothing_acknowledged(
        env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    env["pg"].run("DROP TABLE pms_inventory")
    result = rc.handler.lambda_handler({}, context)
    assert [f["kind"] for f in result["findings"]] == ["pms_drift"]


def test_named_room_nights_are_checked_instead_of_the_hot_set(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    env["redis"].delete("hot:changes")
    assert rc.handler.lambda_handler({}, context)["checked"] == 0
    assert rc.handler.lambda_handler({"room_nights": [pk, "junk"]}, context)["checked"] == 1


@pytest.mark.parametrize("named", [5, "h1#deluxe-king#2027-01-10", {"pk": "h1#deluxe-king#2027-01-10"}])
def test_room_nights_that_are_not_a_list_fail_the_run_naming_the_field(named: Any) -> None:
    with pytest.raises(ValueError, match="room_nights must be a list"):
        rc.handler.room_nights({"room_nights": named}, time.time())


def test_a_night_whose_copies_all_agree_needs_no_second_look() -> None:
    assert rc.consistency.pending_seconds(a_night(age_s=3), copies(), NOW, GRACES) == 0


def test_a_pms_not_yet_acknowledged_is_looked_at_again_when_its_grace_ends() -> None:
    assert rc.consistency.pending_seconds(a_night(age_s=10), copies(pms=None), NOW, GRACES) == 110


def test_the_copy_whose_grace_ends_first_decides_the_second_look() -> None:
    behind = {"available_units": 5, "version": 2}
    assert rc.consistency.pending_seconds(a_night(age_s=3), copies(replica=behind, pms=None), NOW, GRACES) == 7


def test_a_cached_value_of_the_same_version_but_other_units_gets_a_second_look_past_the_caches_grace() -> None:
    wrong = {"units": 9, "version": 3}
    assert rc.consistency.pending_seconds(a_night(age_s=2), copies(cache=wrong), NOW, GRACES) == 3


def test_past_every_grace_a_copy_behind_is_a_finding_not_a_second_look() -> None:
    night = a_night(age_s=600)
    assert rc.consistency.pending_seconds(night, copies(pms=None), NOW, GRACES) == 0
    assert kinds(night, copies(pms=None)) == ["pms_drift"]


# The hot path: the stream feeds the recheck queue, the queue's messages are compared.

def stream_record(sequence: int, pk: str, event: str = "MODIFY", at: float | None = None) -> dict[str, Any]:
    return {"eventSource": "aws:dynamodb", "eventName": event,
            "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "INVENTORY"}}, "SequenceNumber": str(sequence),
                         "ApproximateCreationDateTime": at or time.time()}}


def queue_message(body: Any, message_id: str = "m1") -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "messageId": message_id,
            "body": body if isinstance(body, str) else json.dumps(body)}


@pytest.fixture
def hot(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The recheck queue (without the stack's delay, so a test can read what was queued at once), and
    a record of what the checker sent to it and to the resolver."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="recheck")["QueueUrl"]
    for name, value in {"RECHECK_QUEUE_URL": url,
                        "RESOLVER_FUNCTION": "global-booking-test-overbooking-resolver",
                        "METRICS_NAMESPACE": "GlobalBooking/test"}.items():
        monkeypatch.setenv(name, value)
    sent: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    queue_client = rc.handler.aws.client("sqs")
    real_send = queue_client.send_message_batch

    def send(**kwargs: Any) -> Any:
        sent.extend(kwargs["Entries"])
        return real_send(**kwargs)

    monkeypatch.setattr(queue_client, "send_message_batch", send)
    monkeypatch.setattr(rc.handler.aws.client("lambda"), "invoke",
                        lambda **kwargs: resolved.append({**kwargs, "Payload": json.loads(kwargs["Payload"])}))
    return {**env, "sqs": sqs, "url": url, "sent": sent, "resolved": resolved}


def queued(hot: dict[str, Any]) -> list[dict[str, Any]]:
    messages = hot["sqs"].receive_message(QueueUrl=hot["url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_changed_nights_from_the_stream_are_queued_for_their_recheck_and_marked_hot(hot: dict[str, Any],
                                                                                   context: Any) -> None:
    first, second, changed = f"h1#deluxe-king#{stay(30)}", f"h1#suite#{stay(30)}", time.time() - 5
    response = rc.handler.lambda_handler({"Records": [stream_record(1, first, at=changed), stream_record(2, second),
                                                      stream_record(3, f"h1#gone#{stay(30)}", event="REMOVE")]},
                                         context)
    assert response == {"batchItemFailures": []}
    [message] = queued(hot)
    assert message == {"room_nights": [first, second], "changed_at": changed}
    assert set(hot["redis"].zrange("hot:changes", 0, -1)) == {first, second}


def test_changed_nights_wait_the_queues_own_delay_and_follow_ups_set_theirs(hot: dict[str, Any],
                                                                            context: Any) -> None:
    rc.handler.lambda_handler({"Records": [stream_record(1, f"h1#deluxe-king#{stay(30)}")]}, context)
    assert ["DelaySeconds" in entry for entry in hot["sent"]] == [False]


def test_changed_nights_that_cannot_be_queued_fail_the_batch_from_its_first_record(hot: dict[str, Any], context: Any,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHECK_QUEUE_URL", f"https://sqs.{REGION}.amazonaws.com/123456789012/missing")
    response = rc.handler.lambda_handler({"Records": [stream_record(4, f"h1#deluxe-king#{stay(30)}"),
                                                      stream_record(5, f"h1#suite#{stay(30)}")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "4"}]}


def test_without_redis_changed_nights_are_still_queued(hot: dict[str, Any], context: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "1")
    pk = f"h1#deluxe-king#{stay(30)}"
    assert rc.handler.lambda_handler({"Records": [stream_record(1, pk)]}, context) == {"batchItemFailures": []}
    assert [m["room_nights"] for m in queued(hot)] == [[pk]]


def test_a_recheck_of_consistent_nights_finds_nothing_and_asks_for_no_second_look(hot: dict[str, Any],
                                                                                  context: Any) -> None:
    pk = consistent_night(hot)
    response = rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk], "changed_at": 0})]},
                                         context)
    assert response == {"batchItemFailures": []}
    assert hot["resolved"] == [] and hot["sent"] == []


def test_a_rechecks_findings_go_to_the_resolver_at_once(hot: dict[str, Any], context: Any) -> None:
    pk = consistent_night(hot)
    hot["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": 9, "version": 3}))
    rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk]})]}, context)
    [call] = hot["resolved"]
    assert call["InvocationType"] == "Event" and call["FunctionName"] == "global-booking-test-overbooking-resolver"
    assert [(f["kind"], f["pk"]) for f in call["Payload"]["findings"]] == [("cache_drift", pk)]


def test_a_night_the_pms_may_still_acknowledge_is_queued_again_for_when_its_grace_ends(hot: dict[str, Any],
                                                                                       context: Any) -> None:
    pk = consistent_night(hot, age_s=2)
    hot["pg"].run("DELETE FROM pms_inventory")
    rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk]})]}, context)
    [entry] = hot["sent"]
    assert json.loads(entry["MessageBody"]) == {"room_nights": [pk]}
    assert 115 <= entry["DelaySeconds"] <= 120 and hot["resolved"] == []


def test_each_night_is_looked_at_again_when_its_own_grace_ends_not_the_longest_of_its_batch() -> None:
    messages = rc.handler.follow_ups({"h1#a#2027-01-10": 3.2, "h1#b#2027-01-10": 117.5, "h1#c#2027-01-10": 3.9})
    assert messages == [({"room_nights": ["h1#a#2027-01-10", "h1#c#2027-01-10"]}, 5),
                        ({"room_nights": ["h1#b#2027-01-10"]}, 119)]


def test_without_redis_a_recheck_still_compares_the_other_copies(hot: dict[str, Any], context: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pk = consistent_night(hot)
    hot["pg"].run("DELETE FROM pms_inventory")
    monkeypatch.setenv("REDIS_PORT", "1")
    assert rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk]})]}, context) == {
        "batchItemFailures": []}
    assert [f["kind"] for f in hot["resolved"][0]["Payload"]["findings"]] == ["pms_drift"]


def test_a_message_that_is_not_a_recheck_is_reported_and_the_others_checked(hot: dict[str, Any],
                                                                            context: Any) -> None:
    pk = consistent_night(hot)
    hot["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": 9, "version": 3}))
    response = rc.handler.lambda_handler({"Records": [queue_message("{not json", "bad"),
                                                      queue_message({"room_nights": "h1"}, "worse"),
                                                      queue_message({"room_nights": [pk]}, "good")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}, {"itemIdentifier": "worse"}]}
    assert len(hot["resolved"]) == 1


def test_a_recheck_that_fails_returns_every_message_to_the_queue(hot: dict[str, Any], context: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pk = consistent_night(hot)
    monkeypatch.setenv("DB_PORT", "1")
    response = rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk]}, "a"),
                                                      queue_message({"room_nights": [pk]}, "b")]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}


def test_the_delay_from_change_to_first_comparison_is_published(hot: dict[str, Any], context: Any) -> None:
    pk = consistent_night(hot)
    rc.handler.lambda_handler({"Records": [queue_message({"room_nights": [pk], "changed_at": time.time() - 4})]},
                              context)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    [metric] = cloudwatch.list_metrics(Namespace="GlobalBooking/test", MetricName="HotRecheckLag")["Metrics"]
    points = cloudwatch.get_metric_statistics(Namespace="GlobalBooking/test", MetricName="HotRecheckLag",
                                              StartTime=datetime.now(UTC) - timedelta(minutes=5),
                                              EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60,
                                              Statistics=["Maximum"])["Datapoints"]
    assert metric and 4 <= points[0]["Maximum"] < 10
