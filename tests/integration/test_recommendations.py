"""Flow 4: an activity change → user_activity stream (SUMMARY changes only) → recommendations
→ user_recommendations: at most TOP_N items ranked 1..n by descending score, with the TTL
attribute RECOMMENDATION_TTL_HOURS (24) ahead (settings read from the deployed function).

Two worlds: one test seeds the Redis collaborative-filtering neighbours of the content it watches
(``cf:<content>``, ``content:<id>`` popularity) directly, so a working ranking has more candidates
than TOP_N to choose from; the model test loads the demo's seed catalogue and viewing history
(``tapharness.seed``: Aurora's catalogue, statistics and who finished what), runs the cache
refresh, and has a new viewer finish five titles of one genre through the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pg8000.native
import pytest
import redis

from tapharness import seed, video
from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import HOP_TIMEOUT_S, Api, Clock, ViewingEvent, get_item, new_id

pytestmark = pytest.mark.integration

NEIGHBOURS = 12


@dataclass(frozen=True)
class Seeded:
    content_id: str
    neighbours: dict[str, float]


@pytest.fixture
def seeded_content(cache: redis.Redis) -> Iterator[Seeded]:
    """A content id with NEIGHBOURS similar items (distinct similarities) in the Redis cache."""
    content = new_id("content")
    neighbours = {new_id("similar"): round(0.95 - 0.05 * i, 2) for i in range(NEIGHBOURS)}
    pipe = cache.pipeline(transaction=False)
    pipe.zadd(f"cf:{content}", neighbours)
    for neighbour in neighbours:
        pipe.hset(f"content:{neighbour}", mapping={"title": neighbour, "genre": "test", "popularity": 10.0})
    pipe.execute()
    yield Seeded(content, neighbours)
    cache.delete(f"cf:{content}", *(f"content:{n}" for n in neighbours))


@pytest.fixture(scope="module")
def settings(target: Target) -> dict[str, str]:
    """The recommendations function's environment as deployed."""
    name = target.output("lambda_function_names", "recommendations")
    return target.client("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]


def recommendations_after(target: Target, api: Api, seeded: Seeded) -> tuple[dict[str, Any], float]:
    """Watch the seeded content as a new user; returns their recommendations item and when it was asked for."""
    user = new_id("user")
    asked_at = time.time()
    api.send(ViewingEvent("watch", user, seeded.content_id, 300.0, 1000.0, Clock().tick()))
    item = wait_for(f"the user_recommendations item of {user}",
                    lambda: get_item(target, "recommendations", {"user_id": user}), HOP_TIMEOUT_S)
    return item, asked_at


def test_recommendations_hold_at_most_top_n_ranked_items(
        target: Target, api: Api, seeded_content: Seeded, settings: dict[str, str],
        latency: Callable[..., float]) -> None:
    started = time.monotonic()
    item, _ = recommendations_after(target, api, seeded_content)
    latency("POST /watch → user_recommendations", started)
    items, top_n = item["items"], int(settings.get("TOP_N", "10"))
    assert len(items) == min(top_n, NEIGHBOURS), f"{len(items)} items, expected {min(top_n, NEIGHBOURS)}: {item}"
    assert [entry["rank"] for entry in items] == list(range(1, len(items) + 1)), f"ranks of {items}"
    scores = [entry["score"] for entry in items]
    assert scores == sorted(scores, reverse=True), f"scores not descending by rank: {scores}"
    strangers = {entry["content_id"] for entry in items} - set(seeded_content.neighbours)
    assert not strangers, f"recommended items that are no neighbour of the watched content: {strangers}"


def test_recommendations_expire_ttl_hours_after_generation(
        target: Target, api: Api, seeded_content: Seeded, settings: dict[str, str]) -> None:
    item, asked_at = recommendations_after(target, api, seeded_content)
    attribute = settings.get("TTL_ATTRIBUTE", "expires_at")
    ttl_s = int(settings.get("RECOMMENDATION_TTL_HOURS", "24")) * 3600
    assert attribute in item, f"no TTL attribute {attribute!r} in {item}"
    ahead = item[attribute] - asked_at
    assert ttl_s - 60 <= ahead <= ttl_s + HOP_TIMEOUT_S, (
        f"{attribute} is {ahead / 3600:.3f} h after the request, expected {ttl_s / 3600:g} h")
    table = target.output("dynamodb_table_names", "recommendations")
    ttl = target.client("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", attribute), \
        f"TTL of {table}: {ttl}"


@pytest.fixture(scope="module")
def seeded_world(target: Target, aurora: pg8000.native.Connection) -> seed.World:
    """The seed catalogue and history in Aurora, and the recommendation cache refreshed from them."""
    world = seed.build()
    seed.load_aurora(aurora, world)
    answer = video.refresh_cache(target)
    assert answer["neighbour_lists"] > 0, f"cache_refresh answered {answer}"
    wait_for("the recommendation model to know the seed catalogue", lambda: video.model_answer(target, world),
             HOP_TIMEOUT_S)
    return world


def test_a_viewer_of_the_catalogue_gets_recommendations_scored_by_the_model(
        target: Target, api: Api, seeded_world: seed.World, cache: redis.Redis, settings: dict[str, str],
        latency: Callable[..., float]) -> None:
    today = datetime.now(UTC).date()
    watched = [t for t in seeded_world.titles if t.genre == "drama" and t.license_expiry_date >= today][:5]
    user, clock, started = new_id("user"), Clock(), time.monotonic()
    for title in watched:
        api.send(ViewingEvent("watch", user, title.content_id, 60.0, title.duration_seconds, clock.tick()))
        api.send(ViewingEvent("complete", user, title.content_id, title.duration_seconds - 10, title.duration_seconds,
                              clock.tick()))
    finished = {t.content_id for t in watched}
    top_n = int(settings.get("TOP_N", "10"))
    item = wait_for(f"{top_n} model-scored recommendations for {user}",
                    lambda: get_item(target, "recommendations", {"user_id": user}), HOP_TIMEOUT_S,
                    ready=lambda item: bool(item) and item["source"] == "sagemaker" and len(item["items"]) == top_n
                    and not finished & {e["content_id"] for e in item["items"]})
    latency("POST /complete → model-scored user_recommendations", started)
    entries = item["items"]
    assert {e["source"] for e in entries} == {"sagemaker"}, f"items not scored by the model: {entries}"
    scores = [float(e["score"]) for e in entries]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True), f"scores: {scores}"
    neighbours = set().union(*(cache.zrange(f"cf:{c}", 0, -1) for c in finished))
    assert {e["content_id"] for e in entries} <= neighbours, "a recommended title is no neighbour of a watched one"
