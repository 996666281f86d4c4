"""Alarms raised by the conditions they watch: minutes of slow API answers (p95 latency) and of slow
recommendation runs (p95 duration). The slowness is the sandbox's (``/_sandbox/faults``: a
delay before the handler runs, as a slow dependency), scoped by a marker to this file's own
viewers: the flows running beside these are slowed only where their records share a batch with a marked
one (the recommendations mapping's), and every look moves the shared clock a minute on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import (
    HOP_TIMEOUT_S,
    Api,
    Clock,
    ViewingEvent,
    delete_item,
    get_item,
    new_id,
)

pytestmark = pytest.mark.integration

SLOW_PER_LOOK = 20  # a look is a minute: over 5 % of a five-minute period's requests unless it sees over 2,000


@pytest.fixture
def slow(target: Target) -> Iterator[Callable[[str, float], str]]:
    """slow(function key, seconds) -> a viewer id: that function's invocations for the viewer run that much longer."""
    if not target.is_sandbox:
        pytest.skip("slowing a function on purpose needs the sandbox's /_sandbox/faults")
    slowed: list[str] = []

    def inject(function: str, seconds: float) -> str:
        viewer = new_id("slow-viewer")
        name = str(target.output("lambda_function_names", function))
        target.control("POST", "faults", {"delay": {"function": name, "count": 10_000, "seconds": seconds,
                                                    "matching": viewer}})
        slowed.append(name)
        return viewer

    yield inject
    for name in slowed:
        target.control("POST", "faults", {"delay": {"function": name, "count": 0, "seconds": 0}})


def threshold(target: Target, key: str) -> float:
    name = str(target.output("alarm_names", key))
    return float(target.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["Threshold"])


def test_minutes_of_slow_api_answers_raise_the_api_latency_alarm(target: Target, api: Api, slow: Callable) -> None:
    seconds = threshold(target, "api_latency_p95") / 1000 + 0.5
    viewer, clock = slow("event_processor", seconds), Clock()

    def slow_minute() -> None:
        events = [ViewingEvent("watch", viewer, new_id("content"), 10.0, 100.0, clock.tick())
                  for _ in range(SLOW_PER_LOOK)]
        with ThreadPoolExecutor(max_workers=SLOW_PER_LOOK) as pool:
            list(pool.map(api.send, events))

    assert target.alarm_fires(str(target.output("alarm_names", "api_latency_p95")), slow_minute) == "ALARM"


def test_minutes_of_slow_recommendation_runs_raise_the_duration_alarm(target: Target, api: Api,
                                                                      slow: Callable) -> None:
    seconds = threshold(target, "recommendations_duration_p95") / 1000 + 0.5
    timeout = target.client("lambda").get_function_configuration(
        FunctionName=str(target.output("lambda_function_names", "recommendations")))["Timeout"]
    assert seconds < timeout, (f"the duration alarm's threshold ({seconds - 0.5:.0f} s) is not under the "
                               f"function's timeout ({timeout} s): no run can breach it")
    viewer, clock = slow("recommendations", seconds), Clock()

    def slow_run() -> None:  # one slow run per look, ended before the look's minute is over
        delete_item(target, "recommendations", {"user_id": viewer})
        api.send(ViewingEvent("watch", viewer, new_id("content"), 10.0, 100.0, clock.tick()))
        wait_for(f"the slow recommendation run for {viewer}",
                 lambda: get_item(target, "recommendations", {"user_id": viewer}), HOP_TIMEOUT_S)

    assert target.alarm_fires(str(target.output("alarm_names", "recommendations_duration_p95")), slow_run) == "ALARM"
