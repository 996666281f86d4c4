"""pms_sync_worker: every update reaches its PMS, waits out a broken one, or is parked; none is lost."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapharness.partner_api import PartnerApi

from .conftest import CIRCUIT_TABLE, REGION, load_package, relaxed, stay

pw = load_package("pms_sync_worker", "handler", "breaker", "pms_api")
Breaker = pw.breaker.Breaker


@pytest.fixture
def pms() -> Iterator[PartnerApi]:
    with PartnerApi() as api:
        yield api


@pytest.fixture
def env(aws: Any, postgres_env: Any, pms: PartnerApi, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="opera-pms-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName="opera-pms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="opera-key", SecretString=json.dumps({"api_key": "k-123"}))["ARN"]
    for name, value in {
        "CIRCUIT_TABLE": CIRCUIT_TABLE, "PMS_ENDPOINTS": json.dumps({"opera": pms.url}),
        "PMS_API_KEY_SECRET_ARNS": json.dumps({"opera": secret}),
        "PMS_QUEUES": json.dumps({queue_arn: {"pms_id": "opera", "queue_url": queue, "dlq_url": dlq}}),
        "MAX_RETRIES": "2", "BACKOFF_BASE_MS": "10", "CIRCUIT_FAILURE_THRESHOLD": "2", "CIRCUIT_OPEN_SECONDS": "30",
        "METRICS_NAMESPACE": "global-booking-test/booking",
    }.items():
        monkeypatch.setenv(name, value)
    return {"queue": queue, "queue_arn": queue_arn, "dlq": dlq, "pg": postgres_env}


def update(version: int = 2, units: int = 4, room: str = "deluxe-king") -> dict[str, Any]:
    return {"type": "inventory_changed", "reason": "booking", "pms_id": "opera", "property_id": "h1", "room_id": room,
            "stay_date": stay(30), "available_units": units, "total_units": 10, "version": version,
            "updated_at": "2026-12-02T08:00:00.000Z"}


def deliver(env: dict[str, Any], context: Any, *bodies: Any) -> dict[str, Any]:
    """Send bodies to the queue, receive them as Lambda would, and run the worker on the batch."""
    sqs = boto3.client("sqs", region_name=REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=env["queue"], MessageBody=body if isinstance(body, str) else json.dumps(body))
    messages = sqs.receive_message(QueueUrl=env["queue"], MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "eventSourceARN": env["queue_arn"], "messageAttributes": {}} for m in messages]
    return pw.handler.lambda_handler({"Records": records}, context)


def set_breaker(failures: int, open_until: float, probe_until: float | None = None) -> None:
    item = {"pms_id": {"S": "opera"}, "failures": {"N": str(failures)}, "open_until": {"N": repr(open_until)}}
    if probe_until is not None:
        item["probe_until"] = {"N": repr(probe_until)}
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=CIRCUIT_TABLE, Item=item)


def breaker_item() -> dict[str, Any]:
    return boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=CIRCUIT_TABLE, Key={"pms_id": {"S": "opera"}}).get("Item", {})


def parked(env: dict[str, Any]) -> list[str]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=env["dlq"], MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_an_update_reaches_the_pms_with_its_key_and_is_recorded(env: dict[str, Any], pms: PartnerApi,
                                                                context: Any) -> None:
    assert deliver(env, context, update(version=2, units=4)) == {"batchItemFailures": []}
    [call] = pms.received
    assert call.path == "/properties/h1/availability" and call.headers["Authorization"] == "Bearer k-123"
    assert call.body == {"room_id": "deluxe-king", "stay_date": stay(30), "available_units": 4, "total_units": 10,
                         "version": 2}
    assert env["pg"].run("SELECT available_units, version FROM pms_inventory") == [[4, 2]]


def test_versions_of_one_night_in_a_batch_make_one_call_with_the_newest(env: dict[str, Any], pms: PartnerApi,
                                                                        context: Any) -> None:
    assert deliver(env, context, update(version=3, units=6), update(version=5, units=4),
                   update(version=4, units=5)) == {"batchItemFailures": []}
    assert [call.body["version"] for call in pms.received] == [5]
    assert env["pg"].run("SELECT available_units, version FROM pms_inventory") == [[4, 5]]


def test_calls_to_one_pms_share_one_connection(env: dict[str, Any], pms: PartnerApi, context: Any) -> None:
    rooms = ["deluxe-king", "deluxe-twin", "suite"]
    assert deliver(env, context, *(update(version=2, room=room) for room in rooms)) == {"batchItemFailures": []}
    assert deliver(env, context, update(version=3, room="suite")) == {"batchItemFailures": []}
    assert len(pms.received) == 4 and pms.connections == 1, f"{len(pms.received)} calls over {pms.connections} connections"


def test_a_batch_on_a_closed_breaker_reads_the_breaker_once(env: dict[str, Any], pms: PartnerApi, context: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    load = pw.handler.circuit.load
    monkeypatch.setattr(pw.handler.circuit, "load", lambda pms_id: reads.append(pms_id) or load(pms_id))
    rooms = ["deluxe-king", "deluxe-twin", "suite"]
    assert deliver(env, context, *(update(version=2, room=room) for room in rooms)) == {"batchItemFailures": []}
    assert (len(pms.received), reads) == (3, ["opera"])


def test_after_a_failure_the_batch_reads_the_breaker_again_and_stops_once_it_opened(
        env: dict[str, Any], pms: PartnerApi, context: Any) -> None:
    pms.behave(failure_rate=1.0, status=503)
    set_breaker(failures=1, open_until=0)  # the threshold (2) is one failure away
    rooms = ["deluxe-king", "deluxe-twin", "suite"]
    response = deliver(env, context, *(update(version=2, room=room) for room in rooms))
    assert pms.calls == 3  # the first night's attempts (MAX_RETRIES + 1); the others wait for the breaker
    assert len(response["batchItemFailures"]) == 1 and float(breaker_item()["open_until"]["N"]) > 0


def test_an_update_the_pms_already_has_a_newer_version_of_is_not_sent(env: dict[str, Any], pms: PartnerApi,
                                                                     context: Any) -> None:
    deliver(env, context, update(version=5, units=2))
    assert deliver(env, context, update(version=4, units=3)) == {"batchItemFailures": []}
    assert len(pms.received) == 1
    assert env["pg"].run("SELECT available_units, version FROM pms_inventory") == [[2, 5]]


def test_a_failing_pms_is_retried_with_backoff_within_the_invocation(env: dict[str, Any], pms: PartnerApi,
                                                                     context: Any) -> None:
    pms.behave(fail_next=2, status=503)
    assert deliver(env, context, update()) == {"batchItemFailures": []}
    assert pms.calls == 3 and len(pms.received) == 1


def test_a_refused_update_is_parked_in_the_dlq_at_once(env: dict[str, Any], pms: PartnerApi, context: Any) -> None:
    pms.behave(failure_rate=1.0, status=422)
    assert deliver(env, context, update()) == {"batchItemFailures": []}
    assert pms.calls == 1 and [json.loads(b)["version"] for b in parked(env)] == [2]


def test_a_message_that_is_not_an_update_is_parked(env: dict[str, Any], pms: PartnerApi, context: Any) -> None:
    assert deliver(env, context, "{not json", {"property_id": "h1"}) == {"batchItemFailures": []}
    assert pms.calls == 0 and len(parked(env)) == 2


def test_exhausted_retries_report_the_message_and_count_against_the_breaker(env: dict[str, Any], pms: PartnerApi,
                                                                           context: Any) -> None:
    pms.behave(failure_rate=1.0, status=500)
    response = deliver(env, context, update())
    assert len(response["batchItemFailures"]) == 1 and pms.calls == 3
    assert breaker_item()["failures"]["N"] == "1" and parked(env) == []


def test_the_breaker_opens_at_the_threshold_and_later_messages_wait_without_calls(env: dict[str, Any],
                                                                                 pms: PartnerApi, context: Any) -> None:
    pms.behave(failure_rate=1.0, status=500)
    response = deliver(env, context, update(version=2), update(version=3, room="suite"), update(version=4, room="x1"))
    assert len(response["batchItemFailures"]) == 2  # the two that failed come back after their visibility timeout
    assert pms.calls == 6  # two messages tried three times each; the third waits, sent again with a delay
    delayed = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=env["queue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "1"
    assert float(breaker_item()["open_until"]["N"]) > 0
    metrics = boto3.client("cloudwatch", region_name=REGION).list_metrics(Namespace="global-booking-test/booking")
    assert [m["MetricName"] for m in metrics["Metrics"]] == ["CircuitOpen"]


def test_an_open_breaker_requeues_every_message_with_a_delay_without_calling(env: dict[str, Any], pms: PartnerApi,
                                                                             context: Any) -> None:
    """Waiting out an outage must not spend the messages' receive count (maxReceiveCount would move
    them to the DLQ after a long one): a deferred message is sent again with a delay, not failed."""
    set_breaker(failures=2, open_until=99999999999)
    response = deliver(env, context, update())
    assert response == {"batchItemFailures": []} and pms.calls == 0 and parked(env) == []
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=env["queue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_failure_another_worker_counted_meanwhile_is_kept(env: dict[str, Any], pms: PartnerApi, context: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pms.behave(failure_rate=1.0, status=500)
    push = pw.pms_api.push

    def push_while_another_worker_fails(*args: Any) -> None:
        if pms.calls == 0:  # another worker's failure lands while this one is calling
            boto3.client("dynamodb", region_name=REGION).update_item(
                TableName=CIRCUIT_TABLE, Key={"pms_id": {"S": "opera"}}, UpdateExpression="ADD failures :one",
                ExpressionAttributeValues={":one": {"N": "1"}})
        push(*args)

    monkeypatch.setattr(pw.pms_api, "push", push_while_another_worker_fails)
    deliver(env, context, update())
    assert breaker_item()["failures"]["N"] == "2"
    assert float(breaker_item()["open_until"]["N"]) > 0  # the threshold (2) is met by the two together


def test_a_success_does_not_close_a_breaker_another_worker_opened_meanwhile(env: dict[str, Any], pms: PartnerApi,
                                                                           context: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    set_breaker(failures=1, open_until=0)
    push = pw.pms_api.push

    def push_while_another_worker_opens(*args: Any) -> None:
        set_breaker(failures=2, open_until=99999999999)
        push(*args)

    monkeypatch.setattr(pw.pms_api, "push", push_while_another_worker_opens)
    assert deliver(env, context, update()) == {"batchItemFailures": []}
    assert float(breaker_item()["open_until"]["N"]) == 99999999999


def test_a_half_open_breaker_lets_one_worker_probe_and_the_others_wait(env: dict[str, Any], pms: PartnerApi,
                                                                      context: Any) -> None:
    set_breaker(failures=2, open_until=1, probe_until=99999999999)  # another worker holds the probe
    assert deliver(env, context, update(), update(version=3, room="suite")) == {"batchItemFailures": []}
    assert pms.calls == 0 and parked(env) == []


def test_the_probe_of_a_half_open_breaker_is_one_call_and_its_failure_reopens(env: dict[str, Any], pms: PartnerApi,
                                                                              context: Any) -> None:
    pms.behave(failure_rate=1.0, status=503)
    set_breaker(failures=2, open_until=1)
    deliver(env, context, update(), update(version=3, room="suite"), update(version=4, room="x1"))
    assert pms.calls == 3  # one message, tried MAX_RETRIES + 1 times; the other two wait
    assert float(breaker_item()["open_until"]["N"]) > 1


def test_a_rejected_api_key_opens_the_breaker_and_parks_nothing(env: dict[str, Any], pms: PartnerApi,
                                                               context: Any) -> None:
    """An expired key fails every update: waiting for a new key loses nothing, parking would lose all."""
    pms.behave(failure_rate=1.0, status=401)
    response = deliver(env, context, update(), update(version=3, room="suite"))
    assert parked(env) == [] and pms.calls == 2  # no retries: a key does not heal in a second
    assert int(breaker_item()["failures"]["N"]) == 2 and float(breaker_item()["open_until"]["N"]) > 0
    assert len(response["batchItemFailures"]) == 2


def test_a_message_is_not_started_without_time_for_its_worst_case(env: dict[str, Any], pms: PartnerApi,
                                                                  context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    worst = pw.handler.worst_case_ms(2, 10)
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: worst - 1)
    response = deliver(env, context, update())
    assert len(response["batchItemFailures"]) == 1 and pms.calls == 0


def test_the_worst_case_of_a_message_covers_every_attempt_and_backoff() -> None:
    timeout_ms = pw.pms_api.TIMEOUT_S * 1000
    assert pw.handler.worst_case_ms(2, 10) >= 3 * timeout_ms + 10 + 20 + pw.handler.AUDIT_BUDGET_MS


def test_a_success_after_the_open_period_closes_the_breaker(env: dict[str, Any], pms: PartnerApi,
                                                            context: Any) -> None:
    set_breaker(failures=2, open_until=1)
    assert deliver(env, context, update()) == {"batchItemFailures": []}
    assert breaker_item()["failures"]["N"] == "0" and float(breaker_item()["open_until"]["N"]) == 0


def test_a_closed_breaker_counts_failures_until_the_threshold() -> None:
    state = Breaker().after_failure(100, threshold=3, open_seconds=30)
    assert state.state(100) == "closed"
    state = state.after_failure(101, 3, 30).after_failure(102, 3, 30)
    assert state.state(103) == "open" and state.seconds_left(103) == pytest.approx(29)


def test_a_failed_trial_call_reopens_at_once() -> None:
    half_open = Breaker(failures=5, open_until=50)
    assert half_open.state(60) == "half_open"
    assert half_open.after_failure(60, threshold=10, open_seconds=30).state(61) == "open"


@relaxed
@given(st.integers(0, 10), st.integers(10, 5000), st.floats(0, 0.999))
def test_backoff_doubles_up_to_the_cap_and_never_exceeds_it(retries: int, base_ms: int, draw: float) -> None:
    delays = pw.breaker.backoff_delays(retries, base_ms, 5000, draw)
    assert len(delays) == retries
    assert all(0 <= d <= 5.0 for d in delays) and delays == sorted(delays)


def test_a_worker_holding_an_older_version_never_pushes_it_after_a_newer_one(env: dict[str, Any], pms: PartnerApi,
                                                                             context: Any,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers of the standard queue with v4 and v5 of one room-night: whoever pushes last, the
    PMS must end on v5. The v4 worker is held inside its call while the v5 worker runs."""
    in_call, release = threading.Event(), threading.Event()
    push = pw.pms_api.push

    def slow_for_v4(endpoint: str, api_key: str, body: dict[str, Any]) -> None:
        if body["version"] == 4:
            in_call.set()
            release.wait(10)
        push(endpoint, api_key, body)

    monkeypatch.setattr(pw.pms_api, "push", slow_for_v4)
    older = threading.Thread(target=deliver, args=(env, context, update(version=4, units=5)))
    older.start()
    assert in_call.wait(10)
    newer = threading.Thread(target=deliver, args=(env, context, update(version=5, units=3)))
    newer.start()
    newer.join(1.0)  # with the room-night serialised, the v5 worker waits for the v4 one
    release.set()
    older.join(20)
    newer.join(20)
    assert [call.body["version"] for call in pms.received][-1] == 5, [c.body["version"] for c in pms.received]
    assert env["pg"].run("SELECT available_units, version FROM pms_inventory") == [[3, 5]]
