"""Pure parsing and per-content aggregation of watched-complete messages.

view_count counts 'complete' events (a finished viewing session), full_completions those
whose completion_ratio reaches the full-completion ratio, completion_ratio_sum the sum of
ratios; completion_rate = full_completions / view_count.
viewer_titles pairs each viewer with the titles they finished (full completions only): what
the cache refresh turns into item-to-item similarity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from tap_common.events import InvalidEvent, ViewingEvent


@dataclass(frozen=True)
class Completion:
    event_id: str
    content_id: str
    ratio: float
    user_id: str


@dataclass
class ContentTotals:
    views: int = 0
    full_completions: int = 0
    ratio_sum: float = 0.0


def parse_message(body: str) -> Completion:
    data = json.loads(body)
    event = ViewingEvent.from_record(data)
    if event.event_type != "complete":
        raise InvalidEvent("event_type", "must be 'complete' on this queue")
    ratio = data.get("completion_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or not 0 <= ratio <= 1:
        raise InvalidEvent("completion_ratio", "must be a number between 0 and 1")
    return Completion(event.event_id, event.content_id, float(ratio), event.user_id)


def totals_by_content(completions: Iterable[Completion], full_ratio: float) -> dict[str, ContentTotals]:
    """Totals per content id, each event_id counted once; keys sorted so rows are
    always locked in the same order."""
    seen: set[str] = set()
    totals: dict[str, ContentTotals] = {}
    for completion in completions:
        if completion.event_id in seen:
            continue
        seen.add(completion.event_id)
        entry = totals.setdefault(completion.content_id, ContentTotals())
        entry.views += 1
        entry.full_completions += completion.ratio >= full_ratio
        entry.ratio_sum += completion.ratio
    return dict(sorted(totals.items()))


def viewer_titles(completions: Iterable[Completion], full_ratio: float) -> list[tuple[str, str, int]]:
    """(user_id, content_id, full completions) of every pair with a full completion, sorted so
    rows are always locked in the same order: the co-viewing signal of the recommendation cache."""
    counts: dict[tuple[str, str], int] = {}
    for completion in {c.event_id: c for c in completions}.values():
        if completion.ratio >= full_ratio:
            key = (completion.user_id, completion.content_id)
            counts[key] = counts.get(key, 0) + 1
    return [(user, content, n) for (user, content), n in sorted(counts.items())]
