"""cache_refresh: the Redis recommendation cache (content:*, cf:*, expired:content) computed
from Aurora's catalogue, completion statistics and co-viewing, against a real PostgreSQL and a
real Redis."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
import tap_common.db

from tapharness.services import free_port

from .conftest import load_package

mod = load_package("cache_refresh", "handler", "cachekeys")
keys = mod.cachekeys
TODAY = datetime.now(UTC).date()
TTL = 7200


def test_neighbour_lists_keep_the_most_similar_first_and_at_most_the_limit() -> None:
    rows = [("a", "b", 0.2), ("a", "c", 0.9), ("a", "d", 0.9), ("a", "e", 0.1), ("b", "a", 0.2)]
    assert keys.neighbour_lists(rows, 2) == {"a": {"c": 0.9, "d": 0.9}, "b": {"a": 0.2}}


@pytest.mark.parametrize("similarity", [0.0, -0.5, math.nan, math.inf, 1.5])
def test_neighbour_lists_drop_similarities_outside_zero_to_one(similarity: float) -> None:
    assert keys.neighbour_lists([("a", "b", similarity)], 5) == {}


def test_a_title_is_never_its_own_neighbour() -> None:
    assert keys.neighbour_lists([("a", "a", 1.0)], 5) == {}


def test_content_fields_are_the_documented_strings() -> None:
    title = keys.Title("c1", "Heat", "thriller", date(2027, 1, 31), 12, 0.75)
    fields = keys.content_fields(title, datetime(2026, 12, 2, 10, 0, tzinfo=UTC))
    assert fields == {"title": "Heat", "genre": "thriller", "license_expiry_date": "2027-01-31",
                      "popularity": "12", "completion_rate": "0.750000",
                      "refreshed_at": "2026-12-02T10:00:00+00:00"}


@pytest.fixture
def refresh(postgres_env: Any, redis_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Aurora holds a catalogue of five titles (one expired, one not yet licensed to anyone),
    their statistics, and who finished what."""
    for name, value in {"CACHE_TTL_SECONDS": str(TTL), "NEIGHBOURS_PER_TITLE": "2", "CO_VIEW_WINDOW_DAYS": "90",
                        "VIEWER_TITLES": "50", "MIN_CO_VIEWERS": "1"}.items():
        monkeypatch.setenv(name, value)
    tap_common.db.ensure_schema("catalogue", mod.handler.schema.CATALOGUE)
    tap_common.db.ensure_schema("analytics", mod.handler.schema.ANALYTICS)
    db = postgres_env
    for content_id, genre, expiry in (("heat", "thriller", TODAY + timedelta(days=30)),
                                      ("ronin", "thriller", None),
                                      ("collateral", "thriller", TODAY + timedelta(days=1)),
                                      ("amelie", "romance", TODAY + timedelta(days=60)),
                                      ("gone", "thriller", TODAY - timedelta(days=1))):
        db.run("INSERT INTO content_licenses VALUES (:c, :t, :g, :d)", c=content_id, t=content_id.title(), g=genre, d=expiry)
    db.run("INSERT INTO content_stats (content_id, view_count, full_completions, completion_rate) "
           "VALUES ('heat', 40, 30, 0.75), ('gone', 9, 9, 1.0)")
    viewings = {"u1": ["heat", "ronin", "gone"], "u2": ["heat", "ronin", "collateral"], "u3": ["heat", "amelie"],
                "u4": ["ronin", "gone"]}
    for user, titles in viewings.items():
        for content_id in titles:
            db.run("INSERT INTO viewer_titles (user_id, content_id, full_completions) VALUES (:u, :c, 1)",
                   u=user, c=content_id)
    return redis_env


def run(context: Any) -> dict[str, Any]:
    return mod.handler.lambda_handler({}, context)


def test_every_licensed_title_gets_a_content_hash_with_a_ttl(refresh: Any, context: Any) -> None:
    run(context)
    assert sorted(refresh.keys("content:*")) == ["content:amelie", "content:collateral", "content:heat", "content:ronin"]
    assert refresh.hgetall("content:heat") | {"refreshed_at": "-"} == {
        "title": "Heat", "genre": "thriller", "license_expiry_date": (TODAY + timedelta(days=30)).isoformat(),
        "popularity": "40", "completion_rate": "0.750000", "refreshed_at": "-"}
    assert 0 < refresh.ttl("content:heat") <= TTL


def test_neighbours_are_cosine_similarities_of_co_viewing(refresh: Any, context: Any) -> None:
    run(context)
    # heat: u1 u2 u3; ronin: u1 u2 u4; collateral: u2; amelie: u3 (gone expired, not counted)
    assert refresh.zrevrange("cf:heat", 0, -1, withscores=True) == [
        ("ronin", pytest.approx(2 / 3)), ("amelie", pytest.approx(1 / math.sqrt(3)))]
    assert dict(refresh.zrange("cf:collateral", 0, -1, withscores=True)) == {
        "heat": pytest.approx(1 / math.sqrt(3)), "ronin": pytest.approx(1 / math.sqrt(3))}
    assert 0 < refresh.ttl("cf:heat") <= TTL


def test_expired_titles_are_neither_cached_nor_anyones_neighbour(refresh: Any, context: Any) -> None:
    run(context)
    assert not refresh.exists("content:gone", "cf:gone")
    assert all("gone" not in refresh.zrange(key, 0, -1) for key in refresh.keys("cf:*"))
    assert refresh.smembers("expired:content") == {"gone"}


def test_each_title_keeps_at_most_the_configured_number_of_neighbours(refresh: Any, context: Any) -> None:
    refresh_rows = run(context)
    assert max(refresh.zcard(key) for key in refresh.keys("cf:*")) == 2
    assert refresh_rows["neighbours"] == sum(refresh.zcard(key) for key in refresh.keys("cf:*"))


def test_co_viewing_older_than_the_window_no_longer_counts(refresh: Any, postgres_env: Any, context: Any) -> None:
    postgres_env.run("UPDATE viewer_titles SET last_completed_at = now() - interval '91 days' WHERE user_id = 'u3'")
    run(context)
    assert "amelie" not in refresh.zrange("cf:heat", 0, -1)


def test_a_refresh_replaces_neighbours_that_no_longer_hold(refresh: Any, context: Any) -> None:
    refresh.zadd("cf:heat", {"stale": 0.99})
    run(context)
    assert "stale" not in refresh.zrange("cf:heat", 0, -1)


def test_a_second_refresh_writes_the_same_cache(refresh: Any, context: Any) -> None:
    first = run(context)
    snapshot = {key: refresh.zrange(key, 0, -1, withscores=True) for key in refresh.keys("cf:*")}
    assert run(context) == first
    assert {key: refresh.zrange(key, 0, -1, withscores=True) for key in refresh.keys("cf:*")} == snapshot


def test_an_unreachable_redis_fails_the_invocation(refresh: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", str(free_port()))
    with pytest.raises(redis.exceptions.ConnectionError):
        run(context)
