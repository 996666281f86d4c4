"""The demo's seed world: deterministic, realistic in shape, landed where the stack keeps such data."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from tapharness import seed

TODAY = date(2026, 12, 2)


def test_the_same_seed_builds_the_same_world() -> None:
    assert seed.build(3, today=TODAY) == seed.build(3, today=TODAY)


def test_the_catalogue_has_every_genre_and_some_licences_that_expired_yesterday() -> None:
    world = seed.build(today=TODAY)
    assert len(world.titles) == seed.TITLES and {t.genre for t in world.titles} == set(seed.GENRES)
    expired = [t for t in world.titles if t.license_expiry_date < TODAY]
    assert len(expired) == seed.EXPIRED_TITLES
    assert {t.license_expiry_date for t in expired} == {TODAY - timedelta(days=1)}


def test_each_viewer_watches_distinct_titles_mostly_of_their_favourite_genres() -> None:
    world = seed.build(today=TODAY)
    per_viewer = Counter(v.user_id for v in world.viewings)
    assert len(per_viewer) == seed.VIEWERS and min(per_viewer.values()) >= 8
    assert len({(v.user_id, v.content_id) for v in world.viewings}) > 0.99 * len(world.viewings)
    genres = {t.content_id: t.genre for t in world.titles}
    top_share = [Counter(genres[v.content_id] for v in world.viewings if v.user_id == user).most_common(1)[0][1] / n
                 for user, n in per_viewer.items()]
    assert sum(top_share) / len(top_share) > 0.4


def test_raw_events_land_by_day_as_the_activity_consumer_lands_them() -> None:
    world = seed.build(today=TODAY)
    objects = seed.raw_records(world)
    assert all(key.startswith("year=") and "/month=" in key and "/day=" in key for key in objects)
    events = [e for lines in objects.values() for e in lines]
    assert len(events) == 2 * len(world.viewings)
    assert len({e["event_id"] for e in events}) == len(events)
    completes = sum(e["event_type"] == "complete" for e in events)
    assert completes == sum(v.full for v in world.viewings)
