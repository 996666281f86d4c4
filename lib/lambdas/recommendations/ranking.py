"""Recommendation ranking (pure). handler.py gathers the inputs and writes the result.

Algorithm, per user:
1. Viewing pattern: the user's most recent event items from user_activity, newest
   first, reduced to distinct content ids with their last progress (`seeds`, at most
   MAX_SEEDS).
2. Candidates: the collaborative-filtering neighbours of every seed (Redis `cf:{id}`,
   similarity scores) with their popularity (Redis `content:{id}`).
3. Exclusions, on every path: expired content (Redis `expired:content`) and content the
   user already completed (progress >= the full-completion ratio).
4. Scores, by path, always a relevance in [0, 1] (higher is better), so a stored list reads
   the same whichever path produced it and its ranks follow its scores:
   - "sagemaker": the endpoint scores the candidates (its contract: a relevance in [0, 1];
     values outside are clipped). Should it score fewer than N of them, the list is
     topped up with the best remaining candidates of the Redis fallback, scaled below the
     lowest model score, each entry marked with the path that scored it.
   - Redis fallback (SageMaker error, timeout or unusable answer):
       raw(c) = sum over seeds s of w(s) * sim(s, c) + POPULARITY_WEIGHT * log1p(popularity(c)),
       w(s) = RECENCY_DECAY ** (recency rank of s) * (0.5 + progress(s)),
       score(c) = 1 - exp(-raw(c))   (monotonic, so the order is raw's).
   - DynamoDB-only fallback (Redis unavailable): content in progress (0 < progress <
     full ratio), newest first, then the previous recommendations still valid in their
     previous order; score = position from the end / count.
5. The top N by score (descending), ties broken by content_id (ascending), so equal
   inputs always give the same list; ranks start at 1.
The update is never dropped: whatever path runs, a list (possibly empty) is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_SEEDS = 10
RECENCY_DECAY = 0.8
POPULARITY_WEIGHT = 0.05


@dataclass(frozen=True)
class View:
    content_id: str
    progress: float


MODEL = "sagemaker"
FALLBACK = "fallback"


@dataclass(frozen=True)
class Ranked:
    content_id: str
    score: float
    rank: int
    source: str = FALLBACK


def seeds(views_newest_first: Iterable[View], limit: int = MAX_SEEDS) -> list[View]:
    """Distinct content ids in recency order, each with its most recent progress."""
    seen: dict[str, View] = {}
    for view in views_newest_first:
        if view.content_id not in seen:
            seen[view.content_id] = view
            if len(seen) == limit:
                break
    return list(seen.values())


def excluded_ids(views: Iterable[View], expired: Iterable[str], full_ratio: float) -> set[str]:
    completed = {view.content_id for view in views if view.progress >= full_ratio}
    return completed | set(expired)


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def collaborative_scores(
    seed_views: Sequence[View],
    neighbours: Mapping[str, Sequence[tuple[str, float]]],
    popularity: Mapping[str, float],
    excluded: set[str],
) -> dict[str, float]:
    """Redis fallback score of every candidate reachable from the seeds."""
    scores: dict[str, float] = {}
    for position, seed in enumerate(seed_views):
        weight = RECENCY_DECAY**position * (0.5 + min(max(seed.progress, 0.0), 1.0))
        for candidate, similarity in neighbours.get(seed.content_id, ()):
            if candidate in excluded or not _finite(similarity):
                continue
            scores[candidate] = scores.get(candidate, 0.0) + weight * similarity
    for candidate in scores:
        pop = popularity.get(candidate, 0.0)
        if _finite(pop) and pop > 0:
            scores[candidate] += POPULARITY_WEIGHT * math.log1p(pop)
    return {candidate: 1.0 - math.exp(-raw) for candidate, raw in scores.items()}


def dynamo_only_scores(
    views_newest_first: Sequence[View],
    previous: Sequence[tuple[str, float]],
    excluded: set[str],
    full_ratio: float,
) -> dict[str, float]:
    """DynamoDB-only fallback: continue watching first, then the previous list.

    Scores are positional (1 for the first, down to 1/count) so that top_n keeps that order."""
    ordered: list[str] = []
    for view in seeds(views_newest_first, limit=len(views_newest_first) or 1):
        if 0 < view.progress < full_ratio and view.content_id not in excluded:
            ordered.append(view.content_id)
    for content_id, _ in previous:
        if content_id not in excluded and content_id not in ordered:
            ordered.append(content_id)
    total = len(ordered)
    return {content_id: (total - index) / total for index, content_id in enumerate(ordered)}


def merge_model_scores(
    model: Sequence[tuple[str, float]],
    fallback: Mapping[str, float],
    candidates: set[str],
    n: int,
) -> list[Ranked]:
    """The model's scores of the candidates (clipped to [0, 1]); fewer than n are topped up with
    the fallback's best remaining candidates, scaled below the lowest model score in the list."""
    scored: dict[str, float] = {}
    for content_id, score in model:
        if content_id in candidates and _finite(score):
            scored[content_id] = max(min(max(score, 0.0), 1.0), scored.get(content_id, 0.0))
    head = top_n(scored, n, MODEL)
    floor = head[-1].score if head else 1.0
    rest = top_n({c: floor * s for c, s in fallback.items() if c not in scored}, n - len(head))
    return [Ranked(r.content_id, r.score, index + 1, r.source) for index, r in enumerate([*head, *rest])]


def top_n(scores: Mapping[str, float], n: int, source: str = FALLBACK) -> list[Ranked]:
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[: max(n, 0)]
    return [Ranked(content_id, score, index + 1, source) for index, (content_id, score) in enumerate(ordered)]
