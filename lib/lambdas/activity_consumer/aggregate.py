"""Pure aggregation of viewing events into a user's SUMMARY item and into the
tumbling-window counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tap_common.events import ViewingEvent


@dataclass(frozen=True)
class Summary:
    """The user_activity SUMMARY item (contract.md). `position_by_content` keeps the last
    position per content so forward deltas can be summed; `version` guards the
    read-modify-write against concurrent writers."""

    user_id: str
    last_viewed: str = ""
    last_content_id: str = ""
    watch_seconds: float = 0.0
    completed_count: int = 0
    progress_by_content: Mapping[str, float] = field(default_factory=dict)
    position_by_content: Mapping[str, float] = field(default_factory=dict)
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
            "version": self.version,
        }


def chronological(events: Iterable[ViewingEvent]) -> list[ViewingEvent]:
    """Distinct events (by event_id, first occurrence wins) in (client time, event id) order."""
    unique: dict[str, ViewingEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    return sorted(unique.values(), key=lambda e: e.sort_key)


def apply_events(summary: Summary, events: Sequence[ViewingEvent], full_ratio: float) -> Summary:
    """Fold events (chronological, not yet applied) into the summary; bumps the version.

    watch_seconds adds the forward position delta per content (a rewind adds nothing);
    completed_count counts 'complete' events whose progress reaches `full_ratio`."""
    watch = summary.watch_seconds
    completed = summary.completed_count
    progress = dict(summary.progress_by_content)
    positions = dict(summary.position_by_content)
    last_viewed, last_content = summary.last_viewed, summary.last_content_id
    for event in events:
        previous = positions.get(event.content_id, 0.0)
        watch += max(0.0, event.position_seconds - previous)
        positions[event.content_id] = event.position_seconds
        progress[event.content_id] = event.progress
        if event.event_type == "complete" and event.progress >= full_ratio:
            completed += 1
        if event.client_timestamp >= last_viewed:
            last_viewed, last_content = event.client_timestamp, event.content_id
    return replace(
        summary,
        last_viewed=last_viewed,
        last_content_id=last_content,
        watch_seconds=watch,
        completed_count=completed,
        progress_by_content=progress,
        position_by_content=positions,
        version=summary.version + 1,
    )


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
