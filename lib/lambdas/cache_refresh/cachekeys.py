"""The recommendation cache's Redis schema (pure): what the cache refresh writes and the
recommendations function and the expiration read.

- ``content:{content_id}`` HASH, one per catalogued title whose licence has not expired:
  ``title``, ``genre``, ``license_expiry_date`` (YYYY-MM-DD or ""), ``popularity`` (completed
  viewings, content_stats.view_count), ``completion_rate`` (0..1), ``refreshed_at`` (ISO 8601).
- ``cf:{content_id}`` ZSET, the title's nearest neighbours by co-viewing: member = another
  content id, score = cosine similarity in (0, 1]; at most NEIGHBOURS_PER_TITLE members.
- ``expired:content`` SET of content ids whose licence has expired (never recommended).

``content:*`` and ``cf:*`` expire after CACHE_TTL_SECONDS (several refresh periods, so one
failed refresh leaves the cache warm, and titles nobody watches any more age out). A refresh
replaces each key whole (DEL, then write, then EXPIRE, in one pipeline per chunk).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Title:
    content_id: str
    title: str | None
    genre: str | None
    license_expiry_date: date | None
    popularity: int
    completion_rate: float


def content_key(content_id: str) -> str:
    return f"content:{content_id}"


def neighbours_key(content_id: str) -> str:
    return f"cf:{content_id}"


EXPIRED_KEY = "expired:content"


def content_fields(title: Title, refreshed_at: datetime) -> dict[str, str]:
    rate = title.completion_rate if math.isfinite(title.completion_rate) else 0.0
    return {
        "title": title.title or "",
        "genre": title.genre or "",
        "license_expiry_date": title.license_expiry_date.isoformat() if title.license_expiry_date else "",
        "popularity": str(max(title.popularity, 0)),
        "completion_rate": f"{min(max(rate, 0.0), 1.0):.6f}",
        "refreshed_at": refreshed_at.isoformat(timespec="seconds"),
    }


def neighbour_lists(rows: Iterable[Sequence[object]], limit: int) -> dict[str, dict[str, float]]:
    """{content_id: {neighbour: similarity}} from (content_id, neighbour, similarity) rows,
    at most `limit` per title (highest similarity first, ties by neighbour id); pairs of a
    title with itself and similarities that are not in (0, 1] are dropped."""
    grouped: dict[str, list[tuple[str, float]]] = {}
    for content_id, neighbour, similarity in rows:
        score = float(similarity)  # type: ignore[arg-type]
        if content_id == neighbour or not math.isfinite(score) or not 0 < score <= 1 + 1e-9:
            continue
        grouped.setdefault(str(content_id), []).append((str(neighbour), min(score, 1.0)))
    return {
        content_id: dict(sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:limit])
        for content_id, pairs in sorted(grouped.items())
    }

