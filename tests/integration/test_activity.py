"""Flow 1: POST /watch, /pause, /complete → Kinesis → activity_consumer → user_activity.

contract.md: one event item per event (sort key ``<client_timestamp>#<event_id>``, with its
event_type and progress = position/duration), the user's SUMMARY item (last_viewed,
last_content_id, progress and position per content, watch_seconds, completed_count) and a
``completed#<content_id>`` marker per title completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import (
    HOP_TIMEOUT_S,
    Api,
    Clock,
    ViewingEvent,
    activity_items,
    new_id,
    wait_for_summary,
)

pytestmark = pytest.mark.integration

WATCH_BURST_S = 300.0  # contract.md, SUMMARY: watch credit a viewer may bank


@pytest.mark.parametrize(("route", "position"), [("watch", 120.0), ("pause", 450.0), ("complete", 960.0)])
def test_each_route_records_an_event_item_with_its_type_and_progress(
        target: Target, api: Api, latency: Callable[..., float], route: str, position: float) -> None:
    event = ViewingEvent(route, new_id("user"), new_id("content"), position, 1000.0, Clock().tick())
    started = time.monotonic()
    api.send(event)
    item = wait_for(f"the {route} event item {event.sort_key} of {event.user_id} in user_activity",
                    lambda: activity_items(target, event.user_id).get(event.sort_key), HOP_TIMEOUT_S)
    latency("POST → user_activity event item", started)
    assert {k: item.get(k) for k in ("event_id", "event_type", "content_id", "position_seconds", "duration_seconds")} \
        == {"event_id": event.event_id, "event_type": route, "content_id": event.content_id,
            "position_seconds": position, "duration_seconds": 1000}
    assert item["progress"] == pytest.approx(event.progress, abs=1e-4), f"progress of {item}"


def test_summary_holds_latest_progress_and_last_viewed_after_watch_pause_complete(
        target: Target, api: Api, latency: Callable[..., float]) -> None:
    user, content, clock = new_id("user"), new_id("content"), Clock()
    events = [ViewingEvent("watch", user, content, 100.0, 1000.0, clock.tick()),
              ViewingEvent("pause", user, content, 400.0, 1000.0, clock.tick()),
              ViewingEvent("complete", user, content, 950.0, 1000.0, clock.tick())]
    started = time.monotonic()
    for event in events:
        api.send(event)
    sent_in = time.monotonic() - started
    item = wait_for_summary(target, user, "all three events applied", lambda s: s.get("completed_count") == 1)
    latency("POST ×3 → user_activity SUMMARY", started)
    last = events[-1]
    assert {k: item.get(k) for k in ("last_viewed", "last_content_id", "progress_by_content",
                                     "position_by_content", "completed_count")} == {
        "last_viewed": last.client_timestamp, "last_content_id": content,
        "progress_by_content": {content: 0.95}, "position_by_content": {content: 950}, "completed_count": 1}
    # 950 s of forward deltas posted within seconds: credited up to the burst allowance plus the
    # seconds between the requests (contract.md, SUMMARY), not the 950 s a seek would claim.
    assert WATCH_BURST_S <= item["watch_seconds"] <= WATCH_BURST_S + sent_in + 1, (
        f"watch_seconds {item['watch_seconds']} is not bounded by the clock ({sent_in:.1f} s between the requests)")
    assert set(activity_items(target, user)) == {e.sort_key for e in events} | {"SUMMARY", f"completed#{content}"}
