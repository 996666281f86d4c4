"""Flow 2: a 'complete' → completion_detector → watched-complete (FIFO topic) → the analytics
and achievements queues, each per its filter policy.

- analytics (filter event_type = complete) → analytics_consumer → Aurora content_stats
  (view_count, full_completions, completion_ratio_sum, completion_rate);
- achievements (also completion_ratio >= 0.9) → achievements_consumer. A partial completion
  must not reach it. What shows that: a user whose SUMMARY already qualifies for the
  ``hours_100`` badge, but who never completed anything, gets that badge from the first
  message the achievements consumer handles for them. After a partial completion (fully
  processed by activity and analytics) the badge must still be missing, and the next full
  completion must be the one that awards it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import (
    HOP_TIMEOUT_S,
    Api,
    Clock,
    ViewingEvent,
    badges,
    bank_watch_time,
    new_id,
    queue_attributes,
    redelivery_bound,
    wait_for_summary,
)

pytestmark = pytest.mark.integration

HOURS_100_S = 100 * 3600.0
STATS_COLUMNS = ("view_count", "full_completions", "completion_ratio_sum", "completion_rate")


def content_stats(aurora: pg8000.native.Connection, content_id: str) -> dict[str, Any] | None:
    rows = aurora.run(f"SELECT {', '.join(STATS_COLUMNS)} FROM content_stats WHERE content_id = :c", c=content_id)
    return dict(zip(STATS_COLUMNS, rows[0])) if rows else None


def wait_for_stats(aurora: pg8000.native.Connection, content_id: str, views: int) -> dict[str, Any]:
    return wait_for(f"content_stats of {content_id} in Aurora to count {views} view(s)",
                    lambda: content_stats(aurora, content_id), HOP_TIMEOUT_S,
                    ready=lambda row: row is not None and row["view_count"] >= views,
                    retry_on=(pg8000.exceptions.DatabaseError,))


def test_full_completion_updates_content_stats(
        api: Api, aurora: pg8000.native.Connection, latency: Callable[..., float]) -> None:
    content = new_id("content")
    started = time.monotonic()
    api.send(ViewingEvent("complete", new_id("user"), content, 950.0, 1000.0, Clock().tick()))
    row = wait_for_stats(aurora, content, 1)
    latency("POST /complete → Aurora content_stats", started)
    assert row == {"view_count": 1, "full_completions": 1, "completion_ratio_sum": pytest.approx(0.95),
                   "completion_rate": pytest.approx(1.0)}


def test_completion_rate_counts_partial_and_full_completions(
        api: Api, aurora: pg8000.native.Connection) -> None:
    content = new_id("content")
    api.send(ViewingEvent("complete", new_id("user"), content, 950.0, 1000.0, Clock().tick()))
    api.send(ViewingEvent("complete", new_id("user"), content, 500.0, 1000.0, Clock().tick()))
    row = wait_for_stats(aurora, content, 2)
    assert row == {"view_count": 2, "full_completions": 1, "completion_ratio_sum": pytest.approx(1.45),
                   "completion_rate": pytest.approx(0.5)}


def test_partial_completion_is_not_delivered_to_achievements(
        target: Target, api: Api, aurora: pg8000.native.Connection) -> None:
    user, clock = new_id("user"), Clock()
    bank_watch_time(target, user, HOURS_100_S)  # the SUMMARY qualifies for hours_100; no 'complete' yet
    partial = ViewingEvent("complete", user, new_id("content"), 500.0, 1000.0, clock.tick())
    api.send(partial)
    wait_for_summary(target, user, f"the partial completion of {partial.content_id} applied",
                     lambda s: partial.content_id in s.get("progress_by_content", {}))
    wait_for_stats(aurora, partial.content_id, 1)
    assert "hours_100" not in badges(target, user), "the partial completion reached the achievements consumer"

    full = ViewingEvent("complete", user, new_id("content"), 1000.0, 1000.0, clock.tick())
    api.send(full)
    badge = wait_for(f"the hours_100 badge of {user}", lambda: badges(target, user).get("hours_100"),
                     redelivery_bound(target, "achievements"))
    assert badge["event_id"] == full.event_id, (
        f"hours_100 was awarded by event {badge['event_id']}, expected the full completion {full.event_id} "
        f"(the partial completion was {partial.event_id})")


def test_processed_events_outlive_every_redelivery_of_an_analytics_message(target: Target) -> None:
    function = target.output("lambda_function_names", "analytics_consumer")
    variables = target.client("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    retention_s = int(variables["PROCESSED_EVENTS_RETENTION_DAYS"]) * 86400
    waits_s = sum(int(queue_attributes(target, queue)["MessageRetentionPeriod"]) for queue in ("analytics", "analytics_dlq"))
    assert retention_s >= waits_s, (
        f"processed_events forgets an id after {retention_s} s, but its message can come back for {waits_s} s "
        "(on the queue, then on the dead-letter queue)")
