"""How well the sandbox's recommendation model ranks, on the seed data, next to popularity.

    python benchmarks/recommendation_quality.py [--seed 7] [--k 10]

Leave-last-out on ``tapharness.seed``'s world: for every viewer with at least three finished
titles, the last one they finished is held out; the model (``tapharness.sandbox.models``, the
implicit-feedback ALS that serves the sandbox's SageMaker endpoint) is trained on every other
finished viewing, then asked, as the recommendations function asks it, to score every
licensed title the viewer has not finished given their ten most recent finished titles.
Hit rate@k: the share of viewers whose held-out title is in the model's top k. The baseline
ranks the same candidates by how many viewers finished them. Prints both, with timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tapharness import seed
from tapharness.sandbox.models import ImplicitRecommender

RECENT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    world = seed.build(args.seed)
    today = datetime.now(UTC).date()
    licensed = sorted(t.content_id for t in world.titles if t.license_expiry_date >= today)
    finished: dict[str, list[str]] = {}
    for view in world.viewings:  # oldest first
        if view.full and view.content_id not in finished.setdefault(view.user_id, []):
            finished[view.user_id].append(view.content_id)
    held_out = {user: titles[-1] for user, titles in finished.items() if len(titles) >= 3}
    train = [(user, content, 1) for user, titles in finished.items()
             for content in (titles[:-1] if user in held_out else titles)]

    started = time.perf_counter()
    model = ImplicitRecommender(train)
    trained_s = time.perf_counter() - started
    popularity = Counter(content for _, content, _ in train)

    hits = {"model": 0, "popularity": 0}
    started = time.perf_counter()
    for user, target in held_out.items():
        history = [c for c in finished[user] if c != target]
        candidates = [c for c in licensed if c not in history]
        scores = model.score(history[-RECENT:][::-1], candidates)
        top = sorted(scores, key=lambda c: (-scores[c], c))[: args.k]
        hits["model"] += target in top
        top_popular = sorted(candidates, key=lambda c: (-popularity[c], c))[: args.k]
        hits["popularity"] += target in top_popular
    scored_s = time.perf_counter() - started

    viewers = len(held_out)
    print(f"seed world: {len(world.titles)} titles, {len(finished)} viewers, {len(train)} finished viewings "
          f"for training, {viewers} held-out last titles")
    print(f"model: implicit ALS, trained in {trained_s * 1000:.0f} ms; {viewers} viewers scored in "
          f"{scored_s * 1000:.0f} ms ({scored_s / viewers * 1000:.2f} ms per request)")
    for name, count in hits.items():
        print(f"hit rate@{args.k} {name:<10} {count / viewers:.3f} ({count}/{viewers})")


if __name__ == "__main__":
    main()
