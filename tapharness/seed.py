"""Seed data for the video-streaming stack: a catalogue and a viewing history worth recommending from.

Deterministic (one seeded RNG), so the demo and the model-quality benchmark see the same world:
- TITLES titles across GENRES genres, each with a licence expiry date; EXPIRED_TITLES of them
  expired yesterday (the next expiration run's work), a few more expire within the week.
- VIEWERS viewers, each with one or two favourite genres. A viewer finishes 8 to 24 titles over
  the last 60 days, most from their favourite genres, popular titles more often (Zipf within a
  genre), the rest anywhere in the catalogue; about one viewing in six is abandoned half-way.

``load`` writes it where the stack keeps such data: the catalogue in Aurora (content_licenses)
and DynamoDB (content_catalog); completion statistics and who finished what in Aurora
(content_stats, viewer_titles), as the analytics path would have; and every viewing's events
as raw JSON lines in S3 under raw/year=/month=/day=/, as the activity consumer lands them.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pg8000.native

from tapharness import stacks

if str(stacks.COMMON_LAMBDAS) not in sys.path:
    sys.path.insert(0, str(stacks.COMMON_LAMBDAS))

from tap_common import db, schema  # the layer's package, as the functions import it
from tap_common.batch import chunks

GENRES = ("drama", "comedy", "thriller", "documentary", "animation", "sci-fi", "romance", "horror",
          "crime", "family", "music", "history")
TITLES = 300
VIEWERS = 400
EXPIRED_TITLES = 8
HISTORY_DAYS = 60
FULL_RATIO = 0.9
ADJECTIVES = ("Silent", "Last", "Hidden", "Golden", "Broken", "Distant", "Wild", "Quiet", "Burning", "Lost",
              "Northern", "Electric", "Paper", "Crimson", "Endless")
NOUNS = ("Harbour", "Signal", "Garden", "Frontier", "Orchard", "Machine", "River", "Archive", "Summer", "Kingdom",
         "Station", "Letter", "Mountain", "Circus", "Voyage")


@dataclass(frozen=True)
class Title:
    content_id: str
    title: str
    genre: str
    license_expiry_date: date
    duration_seconds: float


@dataclass(frozen=True)
class Viewing:
    user_id: str
    content_id: str
    completion_ratio: float
    finished_at: datetime

    @property
    def full(self) -> bool:
        return self.completion_ratio >= FULL_RATIO


@dataclass(frozen=True)
class World:
    titles: list[Title]
    viewings: list[Viewing]  # oldest first

    @property
    def expired_ids(self) -> list[str]:
        today = datetime.now(UTC).date()
        return sorted(t.content_id for t in self.titles if t.license_expiry_date < today)


def build(seed: int = 7, titles: int = TITLES, viewers: int = VIEWERS, today: date | None = None) -> World:
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    catalogue: list[Title] = []
    for n in range(titles):
        genre = GENRES[n % len(GENRES)]
        if n < EXPIRED_TITLES:
            expiry = today - timedelta(days=1)
        elif n < EXPIRED_TITLES + 6:
            expiry = today + timedelta(days=rng.randint(1, 7))
        else:
            expiry = today + timedelta(days=rng.randint(30, 720))
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
        catalogue.append(Title(f"title-{n:03d}", name, genre, expiry, float(rng.choice((1500, 2700, 5400, 7200)))))
    by_genre: dict[str, list[Title]] = defaultdict(list)
    for title in catalogue:
        by_genre[title.genre].append(title)
    # Zipf-like weights within a genre: the genre's first titles are its hits.
    weights = {genre: [1.0 / (rank + 1) ** 0.9 for rank in range(len(ts))] for genre, ts in by_genre.items()}
    overall = [1.0 / (rank + 1) ** 0.7 for rank in range(len(catalogue))]
    ranked_overall = sorted(catalogue, key=lambda t: zlib.crc32(t.content_id.encode()))
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    viewings: list[Viewing] = []
    for v in range(viewers):
        user = f"viewer-{v:03d}"
        favourites = rng.sample(GENRES, rng.choice((1, 1, 2)))
        count = rng.randint(8, 24)
        seen: set[str] = set()
        moments = sorted(now - timedelta(seconds=rng.uniform(3600, HISTORY_DAYS * 86400)) for _ in range(count))
        for moment in moments:
            for _ in range(20):  # draw until a title this viewer has not watched yet
                if rng.random() < 0.8:
                    genre = rng.choice(favourites)
                    title = rng.choices(by_genre[genre], weights[genre])[0]
                else:
                    title = rng.choices(ranked_overall, overall)[0]
                if title.content_id not in seen:
                    break
            seen.add(title.content_id)
            ratio = rng.uniform(0.92, 1.0) if rng.random() > 1 / 6 else rng.uniform(0.2, 0.6)
            viewings.append(Viewing(user, title.content_id, round(ratio, 4), moment))
    viewings.sort(key=lambda view: (view.finished_at, view.user_id))
    return World(catalogue, viewings)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_records(world: World) -> dict[str, list[dict[str, Any]]]:
    """The raw event lines of every viewing (a watch and a complete or pause), keyed by the object
    key the activity consumer would have used (one object per day)."""
    durations = {t.content_id: t.duration_seconds for t in world.titles}
    objects: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n, view in enumerate(world.viewings):
        duration = durations[view.content_id]
        started = view.finished_at - timedelta(seconds=duration * view.completion_ratio)
        for event_type, moment, position in (("watch", started, 0.0),
                                             ("complete" if view.full else "pause", view.finished_at,
                                              round(duration * view.completion_ratio, 1))):
            key = f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/seed-history.json"
            objects[key].append({
                "event_id": str(uuid.UUID(int=zlib.crc32(f"{n}-{event_type}".encode()) << 64 | n)),
                "event_type": event_type, "user_id": view.user_id, "content_id": view.content_id,
                "position_seconds": position, "duration_seconds": duration,
                "client_timestamp": _timestamp(moment), "received_at": _timestamp(moment + timedelta(seconds=1)),
            })
    return dict(objects)


def ensure_tables(conn: pg8000.native.Connection) -> None:
    """The functions' own tables (tap_common.schema), created under the lock the functions take."""
    for name, statements in (("catalogue", schema.CATALOGUE), ("analytics", schema.ANALYTICS)):
        conn.run("BEGIN")
        try:
            db.create_schema(conn, name, statements)
        except Exception:
            conn.run("ROLLBACK")
            raise
        conn.run("COMMIT")


def load_aurora(conn: pg8000.native.Connection, world: World) -> None:
    ensure_tables(conn)
    conn.run("BEGIN")
    try:
        conn.run("""INSERT INTO content_licenses (content_id, title, genre, license_expiry_date)
                    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:titles AS text[]), CAST(:genres AS text[]),
                                         CAST(:expiries AS date[]))
                    ON CONFLICT (content_id) DO UPDATE SET title = EXCLUDED.title, genre = EXCLUDED.genre,
                        license_expiry_date = EXCLUDED.license_expiry_date""",
                 ids=[t.content_id for t in world.titles], titles=[t.title for t in world.titles],
                 genres=[t.genre for t in world.titles], expiries=[t.license_expiry_date for t in world.titles])
        views: Counter[str] = Counter(v.content_id for v in world.viewings)
        fulls: Counter[str] = Counter(v.content_id for v in world.viewings if v.full)
        sums: dict[str, float] = defaultdict(float)
        for view in world.viewings:
            sums[view.content_id] += view.completion_ratio
        ids = sorted(views)
        conn.run("""INSERT INTO content_stats AS s (content_id, view_count, full_completions, completion_ratio_sum,
                                                    completion_rate)
                    SELECT c, v, f, r, f::double precision / v
                    FROM unnest(CAST(:ids AS text[]), CAST(:views AS bigint[]), CAST(:fulls AS bigint[]),
                                CAST(:sums AS double precision[])) AS t(c, v, f, r)
                    ON CONFLICT (content_id) DO UPDATE SET view_count = EXCLUDED.view_count,
                        full_completions = EXCLUDED.full_completions,
                        completion_ratio_sum = EXCLUDED.completion_ratio_sum,
                        completion_rate = EXCLUDED.completion_rate""",
                 ids=ids, views=[views[c] for c in ids], fulls=[fulls[c] for c in ids], sums=[sums[c] for c in ids])
        finished = [v for v in world.viewings if v.full]
        conn.run("""INSERT INTO viewer_titles (user_id, content_id, full_completions, last_completed_at)
                    SELECT * FROM unnest(CAST(:users AS text[]), CAST(:ids AS text[]), CAST(:ones AS bigint[]),
                                         CAST(:moments AS timestamptz[]))
                    ON CONFLICT (user_id, content_id) DO UPDATE SET last_completed_at = EXCLUDED.last_completed_at""",
                 users=[v.user_id for v in finished], ids=[v.content_id for v in finished], ones=[1] * len(finished),
                 moments=[v.finished_at for v in finished])
    except Exception:
        conn.run("ROLLBACK")
        raise
    conn.run("COMMIT")


def load_catalog_table(dynamodb: Any, table: str, world: World) -> None:
    items = [{"PutRequest": {"Item": {"content_id": {"S": t.content_id}, "title": {"S": t.title},
                                      "genre": {"S": t.genre}, "expired": {"BOOL": False}}}}
             for t in world.titles]
    for chunk in chunks(items, 25):
        pending = {table: chunk}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def load_raw_events(s3: Any, bucket: str, prefix: str, world: World) -> int:
    objects = raw_records(world)
    for key, lines in sorted(objects.items()):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{key}",
                      Body="\n".join(json.dumps(line) for line in lines).encode() + b"\n")
    return sum(len(lines) for lines in objects.values())

