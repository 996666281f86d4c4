"""Flow 3: ten completed videos → exactly one ``videos_10`` badge in user_achievements and one
message on user-notifications; an eleventh adds none; one title completed ten times earns none.
Watch time that crosses 100 h earns ``hours_100`` with no completion (the activity consumer
announces the crossing on the achievements queue).

"Exactly one" needs every completion to have been handled by the achievements consumer, which
leaves no trace when it awards nothing. The achievements queue is FIFO per user, so a later
message of the same user that does leave a trace proves the earlier ones were handled: the
tests finish with a sentinel, 100 h of banked watch history plus one more completion, which
earns ``hours_100``; once that badge and its notification exist, every earlier completion has been
processed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import (
    Api,
    Clock,
    Inbox,
    ViewingEvent,
    badges,
    bank_watch_time,
    new_id,
    redelivery_bound,
    wait_for_summary,
)

pytestmark = pytest.mark.integration

HOURS_100_S = 100 * 3600.0


def complete_videos(api: Api, user: str, clock: Clock, count: int) -> list[ViewingEvent]:
    events = [ViewingEvent("complete", user, new_id("content"), 600.0, 600.0, clock.tick()) for _ in range(count)]
    for event in events:
        api.send(event)
    return events


def notified_badges(inbox: Inbox, user: str) -> list[str]:
    return sorted(str(body.get("badge_id")) for body in inbox.for_user(user))


def wait_for_badge_notified(target: Target, inbox: Inbox, user: str, badge: str) -> dict[str, Any]:
    """The badge item once it exists, is marked notified, and its notification arrived."""
    bound = redelivery_bound(target, "achievements")
    item = wait_for(f"the {badge} badge of {user} marked notified",
                    lambda: badges(target, user).get(badge), bound, ready=lambda b: b is not None and "notified_at" in b)
    wait_for(f"a {badge} notification for {user} on user-notifications", lambda: notified_badges(inbox, user),
             bound, ready=lambda seen: badge in seen)
    return item


def drain_with_sentinel(target: Target, api: Api, inbox: Inbox, user: str, clock: Clock) -> None:
    """Returns once every earlier completion of the user has been handled (see the module docstring)."""
    bank_watch_time(target, user, HOURS_100_S)
    complete_videos(api, user, clock, 1)
    wait_for_badge_notified(target, inbox, user, "hours_100")


def test_ten_completed_videos_award_one_videos_10_badge_and_one_notification(
        target: Target, api: Api, notifications: Inbox, latency: Callable[..., float]) -> None:
    user, clock = new_id("user"), Clock()
    started = time.monotonic()
    completions = complete_videos(api, user, clock, 10)
    badge = wait_for_badge_notified(target, notifications, user, "videos_10")
    latency("10 × POST /complete → videos_10 badge + notification", started)
    assert badge["event_id"] in {e.event_id for e in completions}, (
        f"badge item {badge} names an event that is not one of the user's completions")

    drain_with_sentinel(target, api, notifications, user, clock)
    assert notified_badges(notifications, user) == ["hours_100", "videos_10"]
    assert sorted(badges(target, user)) == ["hours_100", "videos_10"]


def test_eleventh_completed_video_adds_no_badge_or_notification(
        target: Target, api: Api, notifications: Inbox) -> None:
    user, clock = new_id("user"), Clock()
    complete_videos(api, user, clock, 10)
    awarded = wait_for_badge_notified(target, notifications, user, "videos_10")

    complete_videos(api, user, clock, 1)
    drain_with_sentinel(target, api, notifications, user, clock)
    assert badges(target, user)["videos_10"] == awarded, "the eleventh completion rewrote the videos_10 badge"
    assert notified_badges(notifications, user) == ["hours_100", "videos_10"], (
        "expected one videos_10 notification (and the sentinel's hours_100), not a second videos_10")


def test_one_title_completed_ten_times_earns_no_videos_10(
        target: Target, api: Api, notifications: Inbox) -> None:
    user, clock, content = new_id("user"), Clock(), new_id("content")
    for _ in range(10):
        api.send(ViewingEvent("complete", user, content, 600.0, 600.0, clock.tick()))
    drain_with_sentinel(target, api, notifications, user, clock)
    assert "videos_10" not in badges(target, user), "videos_10 counts distinct titles, not completions"
    assert notified_badges(notifications, user) == ["hours_100"]


def test_watch_time_crossing_100_hours_earns_hours_100_without_a_completion(
        target: Target, api: Api, notifications: Inbox, latency: Callable[..., float]) -> None:
    user, clock, content = new_id("user"), Clock(), new_id("content")
    api.send(ViewingEvent("watch", user, content, 10.0, 600.0, clock.tick()))
    wait_for_summary(target, user, "the first watch applied", lambda s: content in s.get("position_by_content", {}))
    bank_watch_time(target, user, HOURS_100_S - 30)
    started = time.monotonic()
    crossing = ViewingEvent("watch", user, content, 70.0, 600.0, clock.tick())  # 60 s more: over 100 h
    api.send(crossing)
    badge = wait_for_badge_notified(target, notifications, user, "hours_100")
    latency("watch over 100 h → hours_100 badge + notification", started)
    assert badge["event_id"] == crossing.event_id, f"hours_100 was awarded by {badge['event_id']}, not the crossing"
    assert sorted(badges(target, user)) == ["hours_100"], "no completion was sent, so no other badge"
