"""Pure aggregation of viewing events into a user's SUMMARY item and into the
tumbling-window counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tap_common.events import ViewingEvent
from tap_common.milestones import WATCH_SECONDS_FOR_BADGE

# Watch time is credited against the API's clock (each event's received_at), not the client's:
# a viewer earns one second of credit per second between their requests, and may bank up to
# WATCH_BURST_S of it (a player reporting every few minutes, a first report after the start of
# playback). So forward seeks, back-dated client timestamps and bursts of events credit at
# most the wall-clock time the viewer spent plus WATCH_BURST_S (contract.md, SUMMARY).
WATCH_BURST_S = 300.0
# The per-title maps keep the RECENT_TITLES titles seen last, so the SUMMARY stays far below
# DynamoDB's 400 KB item limit whatever a viewer (or anyone posting as them) sends.
RECENT_TITLES = 50


@dataclass(frozen=True)
class Summary:
    """The user_activity SUMMARY item (contract.md). `position_by_content` keeps the last
    position per content so forward deltas can be summed, `seen_by_content` the sort key of
    the event that set it (a late event does not move it back); `watch_credit_s` and
    `last_received` meter watch time against the API's clock; `version` guards the
    read-modify-write against concurrent writers."""

    user_id: str
    last_viewed: str = ""
    last_content_id: str = ""
    watch_seconds: float = 0.0
    completed_count: int = 0
    progress_by_content: Mapping[str, float] = field(default_factory=dict)
    position_by_content: Mapping[str, float] = field(default_factory=dict)
    seen_by_content: Mapping[str, str] = field(default_factory=dict)
    watch_credit_s: float = WATCH_BURST_S
    last_received: str = ""
    version: int = 0

    @classmethod
    def from_item(cls, user_id: str, item: Mapping[str, Any] | None) -> Summary:
        if not item:
            return cls(user_id=user_id)
        return cls(
            user_id=user_id,
            last_viewed=str(item.get("last_viewed", "")),
            last_content_id=str(item.get("last_content_id", "")),
            watch_seconds=float(item.get("watch_seconds", 0)),
            completed_count=int(item.get("completed_count", 0)),
            progress_by_content={k: float(v) for k, v in item.get("progress_by_content", {}).items()},
            position_by_content={k: float(v) for k, v in item.get("position_by_content", {}).items()},
            seen_by_content={k: str(v) for k, v in item.get("seen_by_content", {}).items()},
            watch_credit_s=float(item.get("watch_credit_s", WATCH_BURST_S)),
            last_received=str(item.get("last_received", "")),
            version=int(item.get("version", 0)),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "timestamp": "SUMMARY",
            "last_viewed": self.last_viewed,
            "last_content_id": self.last_content_id,
            "watch_seconds": round(self.watch_seconds, 3),
            "completed_count": self.completed_count,
            "progress_by_content": {k: round(v, 4) for k, v in self.progress_by_content.items()},
            "position_by_content": dict(self.position_by_content),
            "seen_by_content": dict(self.seen_by_content),
            "watch_credit_s": round(self.watch_credit_s, 3),
            "last_received": self.last_received,
            "version": self.version,
        }


def chronological(events: Iterable[ViewingEvent]) -> list[ViewingEvent]:
    """Distinct events (by event_id, first occurrence wins) in (client time, event id) order."""
    unique: dict[str, ViewingEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    return sorted(unique.values(), key=lambda e: e.sort_key)


def _seconds_between(earlier: str, later: str) -> float:
    if not earlier:
        return 0.0
    return max(0.0, (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds())


def completed_title_key(content_id: str) -> str:
    """user_activity sort key of the marker of a title the user completed. Lower-case, so it
    sorts after SUMMARY: a query for keys before SUMMARY reads event items only."""
    return f"completed#{content_id}"


def completes(event: ViewingEvent, full_ratio: float) -> bool:
    """A 'complete' event whose progress reaches `full_ratio`."""
    return event.event_type == "complete" and event.progress >= full_ratio


def newly_completed(events: Sequence[ViewingEvent], full_ratio: float, completed: AbstractSet[str]) -> dict[str, ViewingEvent]:
    """Titles the events complete that `completed` does not hold yet, each with the first event
    that completes it."""
    new: dict[str, ViewingEvent] = {}
    for event in events:
        if completes(event, full_ratio) and event.content_id not in completed:
            new.setdefault(event.content_id, event)
    return new


def apply_events(
    summary: Summary, events: Sequence[ViewingEvent], full_ratio: float, completed: AbstractSet[str] = frozenset()
) -> Summary:
    """Fold events (chronological, not yet applied) into the summary; bumps the version.

    An event older (client time) than the one a title's position came from is history only:
    position, progress and watch time stay. Otherwise watch_seconds adds the forward position
    delta (a rewind adds nothing), up to the viewer's watch credit (``WATCH_BURST_S``);
    completed_count counts the distinct titles completed (progress reaches `full_ratio`) that
    `completed`, the titles completed before, does not hold. The per-title maps keep the
    ``RECENT_TITLES`` titles seen last."""
    watch, credit, received = summary.watch_seconds, summary.watch_credit_s, summary.last_received
    completed_count = summary.completed_count + len(newly_completed(events, full_ratio, completed))
    progress = dict(summary.progress_by_content)
    positions = dict(summary.position_by_content)
    seen = dict(summary.seen_by_content)
    last_viewed, last_content = summary.last_viewed, summary.last_content_id
    for event in events:
        if event.client_timestamp >= last_viewed:
            last_viewed, last_content = event.client_timestamp, event.content_id
        if event.sort_key <= seen.get(event.content_id, ""):
            continue
        available = credit + _seconds_between(received, event.received_at)
        received = max(received, event.received_at)
        credited = min(available, max(0.0, event.position_seconds - positions.get(event.content_id, 0.0)))
        watch += credited
        credit = min(WATCH_BURST_S, available - credited)
        positions[event.content_id] = event.position_seconds
        progress[event.content_id] = event.progress
        seen[event.content_id] = event.sort_key
    titles = set(progress) | set(positions) | set(seen)  # SUMMARY items written before seen_by_content have none
    recent = sorted(titles, key=lambda title: seen.get(title, ""), reverse=True)[:RECENT_TITLES]
    return replace(
        summary,
        last_viewed=last_viewed,
        last_content_id=last_content,
        watch_seconds=watch,
        watch_credit_s=credit,
        last_received=received,
        completed_count=completed_count,
        progress_by_content={k: progress[k] for k in recent if k in progress},
        position_by_content={k: positions[k] for k in recent if k in positions},
        seen_by_content={k: seen[k] for k in recent if k in seen},
        version=summary.version + 1,
    )


def crosses_watch_milestone(before: Summary, after: Summary) -> bool:
    """The fold takes the viewer's watch time over a badge threshold (it never goes down)."""
    return before.watch_seconds < WATCH_SECONDS_FOR_BADGE <= after.watch_seconds


def event_item(event: ViewingEvent) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "timestamp": event.sort_key,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "content_id": event.content_id,
        "position_seconds": event.position_seconds,
        "duration_seconds": event.duration_seconds,
        "progress": round(event.progress, 4),
    }


def window_totals(state: Mapping[str, Any], applied: Sequence[ViewingEvent], duplicates: int, failed: int) -> dict[str, Any]:
    """Add one invocation's outcome to the tumbling-window state (JSON-serialisable).
    Only newly applied events are counted, so redelivered records do not inflate it."""
    by_type = dict(state.get("by_type", {}))
    for event in applied:
        by_type[event.event_type] = by_type.get(event.event_type, 0) + 1
    return {
        "applied": int(state.get("applied", 0)) + len(applied),
        "by_type": by_type,
        "duplicates": int(state.get("duplicates", 0)) + duplicates,
        "failed": int(state.get("failed", 0)) + failed,
        "invocations": int(state.get("invocations", 0)) + 1,
    }
