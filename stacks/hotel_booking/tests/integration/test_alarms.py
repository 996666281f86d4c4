"""The booking path's alarms, each raised by the condition it watches: a booking the handler cannot
finish (5xx), five minutes of slow bookings (p95 latency), a change the cache updater cannot take
(stream failures). The faults are the sandbox's (``/_sandbox/faults``), scoped by a marker to this
file's own requests: the flows running beside these are hit only where their records share a batch with a
marked one (the cache updater's stream), and then only until the mapping's bisection sets them apart."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

pytestmark = pytest.mark.integration

SLOW_S = 0.6  # above the latency alarm's 400 ms
SLOW_PER_MINUTE = 10  # over 5 % of a minute's bookings unless that minute sees over 200


@pytest.fixture
def fault(target: Target) -> Iterator[Callable[..., str]]:
    """fault(kind, function key, settings, marker=None) -> the marker: the function's invocations whose
    event carries it crash or slow down (a new marker unless one is given)."""
    if not target.is_sandbox:
        pytest.skip("injecting crashes and delays needs the sandbox's /_sandbox/faults")
    injected: list[tuple[str, str]] = []

    def inject(kind: str, function: str, settings: dict[str, Any], marker: str | None = None) -> str:
        marker = marker or f"fault-{uuid.uuid4().hex[:12]}"
        name = str(target.output("lambda_function_names", function))
        target.control("POST", "faults", {kind: {"function": name, "matching": marker, **settings}})
        injected.append((kind, name))
        return marker

    yield inject
    for kind, name in injected:  # whatever is left of a fault is cleared
        target.control("POST", "faults", {kind: {"function": name, "count": 0, "seconds": 0}})


def test_a_booking_the_handler_cannot_finish_answers_5xx_and_raises_the_5xx_alarm(
        api: Any, inventory: Any, target: Target, fault: Any, stay: Callable[[int], str]) -> None:
    marker = fault("crash", "booking_handler", {"count": 1})
    property_id = inventory.add_property({"king": ("deluxe", 2)})
    inventory.open_night(property_id, "king", stay(47), total=2)
    status, body = api.book(property_id, "king", stay(47), guest_id=marker)
    assert (status, body) == (500, {"message": "Internal Server Error"})
    assert target.alarm_fires(str(target.output("alarm_names", "booking_api_5xx"))) == "ALARM"


def test_five_minutes_of_slow_bookings_raise_the_latency_alarm(api: Any, target: Target, fault: Any,
                                                               stay: Callable[[int], str]) -> None:
    marker = fault("delay", "booking_handler", {"count": 1000, "seconds": SLOW_S})
    request = json.dumps({"request_id": str(uuid.uuid4()), "property_id": "no-such-property", "room_id": "king",
                          "check_in": stay(48), "nights": 1, "units": 1, "guest_id": marker}).encode()

    def slow_minute() -> None:
        with ThreadPoolExecutor(max_workers=SLOW_PER_MINUTE) as pool:
            statuses = list(pool.map(lambda _: api.call("POST", "/book", request)[0], range(SLOW_PER_MINUTE)))
        assert statuses == [404] * SLOW_PER_MINUTE, statuses

    assert target.alarm_fires(str(target.output("alarm_names", "booking_latency_p95")), slow_minute) == "ALARM"


def test_a_change_the_cache_updater_cannot_take_is_parked_and_raises_the_stream_failures_alarm(
        api: Any, inventory: Any, target: Target, fault: Any, stay: Callable[[int], str]) -> None:
    sqs = target.client("sqs")
    queue = str(target.output("failure_queue_urls", "stream_failures"))

    def parked() -> int:
        return int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"])

    before = parked()
    property_id = inventory.add_property({"king": ("deluxe", 2)})
    fault("crash", "cache_updater", {"count": 100}, marker=property_id)  # its nights' stream records carry it
    inventory.open_night(property_id, "king", stay(49), total=2)
    wait_for("the given-up change in stream_failures", parked, timeout=240, ready=lambda count: count > before)
    assert target.alarm_fires(str(target.output("alarm_names", "stream_failures"))) == "ALARM"
