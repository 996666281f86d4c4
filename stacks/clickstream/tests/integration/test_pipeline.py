"""The clickstream end to end: producer -> Kinesis -> stream_processor -> DynamoDB -> internal ALB."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .conftest import event, replay_given_up

pytestmark = pytest.mark.integration


def test_events_reach_the_per_user_and_per_page_insights(producer: Any, insights: Any) -> None:
    user, page = f"u-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"
    producer.put([event(user, page, t) for t in ("page_view", "page_view", "click")])
    status, body = wait_for("the page's insight", lambda: insights.get(f"/pages/{page}"), timeout=60,
                            # the counters move with the events' transaction, the sketch right after it
                            ready=lambda answer: (answer[1].get("views"), answer[1].get("unique_users")) == (3, 1))
    assert status == 200 and body == {"page": page, "views": 3, "unique_users": 1,
                                      "by_type": {"click": 1, "page_view": 2}, "window": body["window"]}
    assert body["window"]["hours"] == 24
    assert insights.get(f"/users/{user}")[1]["events"] == 3


def test_a_poison_record_is_parked_and_the_stream_keeps_flowing(producer: Any, insights: Any,
                                                                target: Target) -> None:
    marker = uuid.uuid4().hex
    page = f"p-{marker[:8]}"
    producer.put([f'{{"poison": "{marker}"'.encode(), event("u-after", page)])
    wait_for("the event after the poison", lambda: insights.get(f"/pages/{page}"), timeout=60,
             ready=lambda answer: answer[1].get("views") == 1)
    sqs, queue = target.client("sqs"), str(target.output("stream_failures_queue_url"))

    def parked() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=1).get("Messages", [])
        bodies = [json.loads(m["Body"]) for m in messages]
        return [b for b in bodies if marker.encode() in base64.b64decode(b.get("data", ""))]

    [found] = wait_for("the poison record in stream_failures", parked, timeout=30)
    assert found["reason"] == "not JSON"


def test_a_crashing_consumer_and_a_throttled_table_lose_and_duplicate_nothing(producer: Any, insights: Any,
                                                                              target: Target) -> None:
    if not target.is_sandbox:
        pytest.skip("injecting crashes and throttling needs the sandbox's /_sandbox/faults")
    function = str(target.output("lambda_function_names")["stream_processor"])
    target.control("POST", "faults", {"crash": {"function": function, "count": 2, "after_s": 0.05},
                                      "error": {"request": "dynamodb TransactWriteItems", "count": 6,
                                                "code": "ProvisionedThroughputExceededException"}})
    page = f"p-{uuid.uuid4().hex[:8]}"
    producer.put([event(f"u-{i % 7}", page) for i in range(120)])
    wait_for("all 120 events", lambda: insights.get(f"/pages/{page}"), timeout=120,
             ready=lambda answer: answer[1].get("views", 0) >= 120)
    assert insights.get(f"/pages/{page}")[1]["views"] == 120  # not one more: replays overwrite themselves


def test_records_a_throttled_processor_cannot_take_in_time_are_kept_with_their_data_and_replayed(
        producer: Any, insights: Any, target: Target) -> None:
    """Reserved concurrency 0 stands for an outage: the mapping retries until the records' maximum
    age, gives them up with their data to the given-up bucket, and the replay tool puts them back."""
    lam, s3 = target.client("lambda"), target.client("s3")
    function = str(target.output("lambda_function_names")["stream_processor"])
    [mapping] = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    bucket, user = str(target.output("given_up_bucket")), f"u-{uuid.uuid4().hex[:8]}"
    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    try:
        producer.put([event(user, "home") for _ in range(3)])
        if target.is_sandbox:  # in an account the minutes pass
            target.control("POST", "clock", {"advance_s": mapping["MaximumRecordAgeInSeconds"] + 1})

        def given_up() -> list[str]:
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="aws/lambda/").get("Contents", [])]
            return [k for k in keys if user.encode() in s3.get_object(Bucket=bucket, Key=k)["Body"].read()]

        wait_for("the given-up records in the bucket", given_up, timeout=mapping["MaximumRecordAgeInSeconds"] + 90)
    finally:
        lam.delete_function_concurrency(FunctionName=function)
    assert insights.get(f"/users/{user}")[1]["events"] == 0  # given up, not stored
    counts = replay_given_up.replay(target)
    assert counts["left"] == 0 and counts["replayed"] >= 3, counts
    status, replayed = wait_for("the replayed events", lambda: insights.get(f"/users/{user}"), timeout=60,
                            ready=lambda answer: answer[1].get("events") == 3)
    assert status == 200 and replayed["events"] == 3


def test_the_alb_answers_unknown_paths_with_its_fixed_404_and_health_checks(insights: Any) -> None:
    assert insights.get("/nowhere") == (404, {"error": "no such insight"})
    assert insights.get("/health") == (200, {"status": "ok"})


def test_a_parked_record_raises_the_parked_records_alarm(producer: Any, target: Target) -> None:
    """The alarm wants 2 of 3 one-minute periods with a record parked in stream_failures (the
    services sample the queue once a minute)."""
    marker = uuid.uuid4().hex
    producer.put([f'{{"poison": "{marker}"'.encode()])
    sqs, queue = target.client("sqs"), str(target.output("stream_failures_queue_url"))
    wait_for("a parked record", lambda: int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]), timeout=60)
    assert _alarm_fires(target, "parked_records", lambda: None) == "ALARM"


def _alarm_fires(target: Target, key: str, provoke: Any) -> str:
    """The alarm wants 2 of 3 one-minute periods with a datapoint: each look provokes one."""
    return target.alarm_fires(str(target.output("alarm_names", key)), provoke)


@pytest.mark.parametrize("function", ["insights_api", "stream_processor"])
def test_a_functions_errors_raise_its_errors_alarm(producer: Any, insights: Any, target: Target, function: str) -> None:
    if not target.is_sandbox:
        pytest.skip("making a healthy function fail needs the sandbox's crash injection (/_sandbox/faults)")
    name = str(target.output("lambda_function_names")[function])

    def crash_one() -> None:
        target.control("POST", "faults", {"crash": {"function": name, "count": 1, "after_s": 0}})
        if function == "insights_api":
            assert insights.get("/pages/home")[0] == 502
        else:
            producer.put([event(f"u-{uuid.uuid4().hex[:8]}", "home")])
            wait_for("the crash", lambda: target.control("GET", "faults")["crashed"].get(name, 0) > crashed[0],
                     timeout=30)
            crashed[0] += 1

    crashed = [target.control("GET", "faults")["crashed"].get(name, 0)]
    assert _alarm_fires(target, f"{function}_errors", crash_one) == "ALARM"


def test_a_throttled_api_raises_its_throttles_alarm(insights: Any, target: Target) -> None:
    """Reserved concurrency 0 throttles every invocation, here and in an account."""
    lam, name = target.client("lambda"), str(target.output("lambda_function_names")["insights_api"])
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    try:
        assert _alarm_fires(target, "insights_api_throttles", lambda: insights.get("/pages/home")) == "ALARM"
    finally:
        lam.delete_function_concurrency(FunctionName=name)


def test_failed_requests_behind_the_alb_raise_the_alb_5xx_alarm(insights: Any, target: Target) -> None:
    if not target.is_sandbox:
        pytest.skip("making a healthy function fail needs the sandbox's crash injection (/_sandbox/faults)")
    name = str(target.output("lambda_function_names")["insights_api"])

    def failed_request() -> None:
        target.control("POST", "faults", {"crash": {"function": name, "count": 1, "after_s": 0}})
        assert insights.get("/pages/home")[0] == 502

    assert _alarm_fires(target, "alb_5xx", failed_request) == "ALARM"


@pytest.mark.parametrize(("alarm", "request_label"), [("put_throttles", "kinesis PutRecords"),
                                                      ("write_throttles", "dynamodb TransactWriteItems")])
def test_a_throttled_stream_or_table_raises_its_throttles_alarm_and_loses_nothing(
        producer: Any, insights: Any, target: Target, alarm: str, request_label: str) -> None:
    """Each look at the alarm throttles one request (the producer's PutRecords, or the processor's
    TransactWriteItems: the SDK retries either) and waits for its event to be stored."""
    if not target.is_sandbox:
        pytest.skip("throttling the stream or the table on demand needs the sandbox's /_sandbox/faults")
    page = f"p-{uuid.uuid4().hex[:8]}"
    sent: list[dict[str, Any]] = []

    def throttled_event() -> None:
        target.control("POST", "faults", {"error": {"request": request_label, "count": 1,
                                                    "code": "ProvisionedThroughputExceededException"}})
        sent.append(event(f"u-{len(sent)}", page))
        producer.put(sent[-1:])
        wait_for("the throttled event stored", lambda: insights.get(f"/pages/{page}"), timeout=60,
                 ready=lambda answer: answer[1].get("views") == len(sent))

    assert _alarm_fires(target, alarm, throttled_event) == "ALARM"
    assert insights.get(f"/pages/{page}")[1]["views"] == len(sent)


def test_a_processor_without_concurrency_raises_its_throttles_alarm_and_its_records_are_kept(
        producer: Any, insights: Any, target: Target) -> None:
    """Reserved concurrency 0 throttles every batch the mapping hands over; each look puts one
    event. Those older than the maximum record age by the time concurrency is back are given up
    with their data and replayed; none is lost."""
    lam = target.client("lambda")
    function = str(target.output("lambda_function_names")["stream_processor"])
    user, sent = f"u-{uuid.uuid4().hex[:8]}", [0]

    def throttled() -> int:
        return sum(p["throttled"] for p in target.control("GET", "pollers") if p["function"].endswith(f":{function}"))

    def throttled_put() -> None:
        before = throttled() if target.is_sandbox else 0
        producer.put([event(user, "home")])
        sent[0] += 1
        if target.is_sandbox:  # the throttled handover before the clock moves on
            wait_for("a throttled invocation", throttled, timeout=30, ready=lambda count: count > before)

    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    try:
        assert _alarm_fires(target, "stream_processor_throttles", throttled_put) == "ALARM"
    finally:
        lam.delete_function_concurrency(FunctionName=function)

    def stored_after_replay() -> int:
        replay_given_up.replay(target)
        return int(insights.get(f"/users/{user}")[1].get("events", 0))

    assert wait_for("every event, delivered or replayed", stored_after_replay, timeout=180,
                    ready=lambda events: events >= sent[0]) == sent[0]
