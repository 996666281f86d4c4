"""SNS -> SQS -> pms_sync_worker -> the PMS (the sandbox's stand-in): delivered, deferred by the breaker, never lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

# The tests set the one opera stand-in's behaviour (and reset it on teardown): one worker runs
# them one after another (the sign-off's --dist loadfile), or a reset by one turns off the
# failures another waits on.
pytestmark = pytest.mark.integration


def stand_in(target: Target, pms: str) -> Any:
    if not target.is_sandbox:
        pytest.skip("needs the sandbox's PMS stand-in (a real account talks to the vendors' PMS)")
    target.control("POST", f"partners/{pms}", {})
    yield lambda **behaviour: target.control("POST", f"partners/{pms}", behaviour)
    target.control("POST", f"partners/{pms}", {})


@pytest.fixture
def opera(target: Target) -> Any:
    yield from stand_in(target, "opera")


@pytest.fixture
def mews(target: Target) -> Any:
    yield from stand_in(target, "mews")


def delivered(target: Target, property_id: str, pms: str = "opera") -> list[dict[str, Any]]:
    received = target.control("GET", f"partners/{pms}")["received"]
    return [r for r in received if r["path"] == f"/properties/{property_id}/availability"]


def breaker(target: Target, pms: str) -> dict[str, Any]:
    return target.client("dynamodb").get_item(TableName=str(target.output("circuit_table_name")),
                                              Key={"pms_id": {"S": pms}}, ConsistentRead=True).get("Item", {})


def test_a_booking_reaches_the_propertys_pms_within_a_minute(api: Any, inventory: Any, target: Target, opera: Any,
                                                             stay: Callable[[int], str]) -> None:
    property_id = inventory.add_property({"king": ("deluxe", 4)})
    inventory.open_night(property_id, "king", stay(50), total=4)
    started = time.monotonic()
    assert api.book(property_id, "king", stay(50))[0] == 201
    [call] = wait_for("the PMS to receive the update", lambda: delivered(target, property_id), timeout=60)
    assert call["body"] == {"room_id": "king", "stay_date": stay(50), "available_units": 3, "total_units": 4,
                            "version": 2}
    assert call["headers"]["Authorization"] == "Bearer sandbox-opera-key"
    assert time.monotonic() - started < 60


def test_a_failing_pms_opens_the_breaker_and_gets_every_update_after_recovery(
        api: Any, inventory: Any, target: Target, opera: Any, stay: Callable[[int], str]) -> None:
    opera(failure_rate=1.0, status=503)
    property_id = inventory.add_property({"king": ("deluxe", 9)})
    for day in (51, 52, 53):
        inventory.open_night(property_id, "king", stay(day), total=9)
        assert api.book(property_id, "king", stay(day))[0] == 201
    circuit = target.client("dynamodb")
    table = str(target.output("circuit_table_name"))

    def breaker() -> dict[str, Any]:
        return circuit.get_item(TableName=table, Key={"pms_id": {"S": "opera"}}, ConsistentRead=True).get("Item", {})

    wait_for("the opera breaker to open", breaker, timeout=90,
             ready=lambda item: float(item.get("open_until", {}).get("N", "0")) > time.time())
    assert delivered(target, property_id) == []
    opera(failure_rate=0.0)
    received = wait_for("every update after recovery", lambda: delivered(target, property_id), timeout=120,
                        ready=lambda calls: len({c["body"]["stay_date"] for c in calls}) == 3)
    assert {c["body"]["stay_date"] for c in received} == {stay(51), stay(52), stay(53)}
    wait_for("the breaker to close", breaker, timeout=30, ready=lambda item: item.get("failures", {}).get("N") == "0")
    dlq = target.client("sqs").get_queue_attributes(QueueUrl=target.output("pms_dlq_urls", "opera"),
                                                    AttributeNames=["ApproximateNumberOfMessages"])
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_an_update_the_pms_refuses_is_parked_with_its_data_and_raises_the_dlq_alarm(
        api: Any, inventory: Any, target: Target, opera: Any, stay: Callable[[int], str]) -> None:
    opera(failure_rate=1.0, status=422)  # a refusal of the update itself, not of the key: parked at once
    property_id = inventory.add_property({"king": ("deluxe", 5)})
    inventory.open_night(property_id, "king", stay(54), total=5)
    assert api.book(property_id, "king", stay(54))[0] == 201
    assert target.alarm_fires(str(target.output("alarm_names", "pms_dlq_opera")), timeout=300) == "ALARM"
    sqs = target.client("sqs")
    dlq_url = str(target.output("pms_dlq_urls", "opera"))

    def parked() -> list[dict[str, Any]]:
        found = []
        for message in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10,
                                           MessageAttributeNames=["reason"]).get("Messages", []):
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])  # redriven by hand
            found.append(message)
        return found

    seen: list[dict[str, Any]] = []

    def parked_so_far() -> list[dict[str, Any]]:
        seen.extend(parked())
        return seen

    ours = wait_for("the refused update in the DLQ", parked_so_far, timeout=60,
                    ready=lambda messages: any(property_id in m["Body"] and stay(54) in m["Body"] for m in messages))
    [message] = [m for m in ours if property_id in m["Body"]]
    assert "422" in message["MessageAttributes"]["reason"]["StringValue"], message["MessageAttributes"]


# A new update reaches the worker within a few seconds (1 s batching window), which meets the open
# breaker (deferring it) or fails its probe, and reports CircuitOpen at once.
REPORTED_WITHIN_S = 5


@pytest.mark.parametrize("pms", ["opera", "mews"])
def test_a_pms_down_for_five_minutes_raises_its_backlog_and_breaker_alarms_and_loses_nothing(
        api: Any, inventory: Any, target: Target, stay: Callable[[int], str], request: pytest.FixtureRequest,
        pms: str) -> None:
    partner = request.getfixturevalue(pms)
    partner(failure_rate=1.0, status=503)
    property_id = inventory.add_property({"king": ("deluxe", 9)}, pms_id=pms)
    for day in (55, 56):
        inventory.open_night(property_id, "king", stay(day), total=9)
        assert api.book(property_id, "king", stay(day))[0] == 201
    wait_for(f"the {pms} breaker to open", lambda: breaker(target, pms), timeout=90,
             ready=lambda item: float(item.get("open_until", {}).get("N", "0")) > time.time())
    alarms = target.output("alarm_names")
    assert target.alarm_fires(str(alarms[f"pms_backlog_{pms}"]), timeout=300) == "ALARM"
    days = [55, 56]

    def another_update() -> None:  # a booking a minute while the PMS stays down: CircuitOpen each minute
        days.append(days[-1] + 1)
        inventory.open_night(property_id, "king", stay(days[-1]), total=9)
        assert api.book(property_id, "king", stay(days[-1]))[0] == 201
        time.sleep(REPORTED_WITHIN_S)

    assert target.alarm_fires(str(alarms[f"circuit_open_{pms}"]), another_update, timeout=300) == "ALARM"
    partner(failure_rate=0.0)
    received = wait_for("every update after recovery", lambda: delivered(target, property_id, pms), timeout=120,
                        ready=lambda calls: {c["body"]["stay_date"] for c in calls} == {stay(d) for d in days})
    assert {c["body"]["stay_date"] for c in received} == {stay(d) for d in days}


def test_an_update_mews_refuses_is_parked_and_raises_its_dlq_alarm(
        api: Any, inventory: Any, target: Target, mews: Any, stay: Callable[[int], str]) -> None:
    mews(failure_rate=1.0, status=422)
    property_id = inventory.add_property({"king": ("deluxe", 5)}, pms_id="mews")
    inventory.open_night(property_id, "king", stay(57), total=5)
    assert api.book(property_id, "king", stay(57))[0] == 201
    assert target.alarm_fires(str(target.output("alarm_names", "pms_dlq_mews")), timeout=300) == "ALARM"
