"""Scheduled (EventBridge) refresh of the recommendation cache from Aurora.

Reads, in one read-only transaction:
- the catalogue (content_licenses) with its completion statistics (content_stats) → one
  ``content:{id}`` hash per title whose licence has not expired;
- co-viewing (viewer_titles: who fully completed which title) → item-to-item cosine
  similarity, computed by Aurora, over each viewer's most recent VIEWER_TITLES titles
  completed in the last CO_VIEW_WINDOW_DAYS days (which bounds the pair join however much
  one account watches):
      sim(a, b) = viewers(a ∩ b) / sqrt(viewers(a) · viewers(b)),
  pairs seen by fewer than MIN_CO_VIEWERS viewers dropped, expired titles on neither side,
  the NEIGHBOURS_PER_TITLE most similar kept per title → ``cf:{id}``;
- the expired titles → ``expired:content``.
Then writes them to Redis (cachekeys.py has the schema, TTL and size bound) in pipelines of
WRITE_CHUNK titles. Running it twice writes the same cache; an error fails the invocation,
and EventBridge's retry policy and the async-failure queue take it from there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from cachekeys import (
    EXPIRED_KEY,
    Title,
    content_fields,
    content_key,
    neighbour_lists,
    neighbours_key,
)
from pg8000.native import Connection
from tap_common import config, db, schema
from tap_common.batch import chunks
from tap_common.cache import redis_client
from tap_common.logs import logger as make_logger

logger = make_logger()

WRITE_CHUNK = 200

TITLES = """
    SELECT coalesce(l.content_id, s.content_id), l.title, l.genre, l.license_expiry_date,
           coalesce(s.view_count, 0), coalesce(s.completion_rate, 0)
    FROM content_licenses l FULL JOIN content_stats s ON s.content_id = l.content_id
    WHERE l.license_expiry_date IS NULL OR l.license_expiry_date >= :today
    ORDER BY 1"""

EXPIRED = "SELECT content_id FROM content_licenses WHERE license_expiry_date < :today ORDER BY content_id"

SIMILAR = """
    WITH recent AS (
        SELECT user_id, content_id FROM (
            SELECT v.user_id, v.content_id,
                   row_number() OVER (PARTITION BY v.user_id ORDER BY v.last_completed_at DESC, v.content_id) AS n
            FROM viewer_titles v
            WHERE v.last_completed_at >= now() - make_interval(days => CAST(:window_days AS int))
              AND NOT EXISTS (SELECT 1 FROM content_licenses l
                              WHERE l.content_id = v.content_id AND l.license_expiry_date < :today)
        ) latest WHERE n <= CAST(:per_viewer AS int)
    ),
    viewers AS (SELECT content_id, count(*)::double precision AS n FROM recent GROUP BY content_id),
    pairs AS (
        SELECT a.content_id AS a, b.content_id AS b, count(*) AS co
        FROM recent a JOIN recent b ON b.user_id = a.user_id AND b.content_id <> a.content_id
        GROUP BY a.content_id, b.content_id
        HAVING count(*) >= CAST(:min_co AS int)
    ),
    scored AS (
        SELECT p.a, p.b, p.co / sqrt(va.n * vb.n) AS similarity
        FROM pairs p JOIN viewers va ON va.content_id = p.a JOIN viewers vb ON vb.content_id = p.b
    ),
    ranked AS (
        SELECT a, b, similarity, row_number() OVER (PARTITION BY a ORDER BY similarity DESC, b) AS rank
        FROM scored
    )
    SELECT a, b, similarity FROM ranked WHERE rank <= CAST(:k AS int) ORDER BY a, rank"""


def read_aurora(today: date, k: int, window_days: int, per_viewer: int, min_co: int) -> tuple[
        list[Title], dict[str, dict[str, float]], list[str]]:
    def read(conn: Connection) -> tuple[list[Title], dict[str, dict[str, float]], list[str]]:
        conn.run("SET TRANSACTION READ ONLY")
        titles = [Title(row[0], row[1], row[2], row[3], int(row[4]), float(row[5]))
                  for row in conn.run(TITLES, today=today)]
        similar = conn.run(SIMILAR, today=today, k=k, window_days=window_days, per_viewer=per_viewer, min_co=min_co)
        expired = [row[0] for row in conn.run(EXPIRED, today=today)]
        return titles, neighbour_lists(similar, k), expired

    db.ensure_schema("catalogue", schema.CATALOGUE)
    db.ensure_schema("analytics", schema.ANALYTICS)
    return db.in_transaction(read)


def write_cache(titles: list[Title], neighbours: dict[str, dict[str, float]], expired: list[str],
                ttl_seconds: int, now: datetime) -> None:
    client = redis_client()
    for chunk in chunks(titles, WRITE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for title in chunk:
            pipe.delete(content_key(title.content_id))
            pipe.hset(content_key(title.content_id), mapping=content_fields(title, now))
            pipe.expire(content_key(title.content_id), ttl_seconds)
        pipe.execute()
    for chunk in chunks(sorted(neighbours), WRITE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for content_id in chunk:
            pipe.delete(neighbours_key(content_id))
            pipe.zadd(neighbours_key(content_id), neighbours[content_id])
            pipe.expire(neighbours_key(content_id), ttl_seconds)
        pipe.execute()
    for chunk in chunks(expired, WRITE_CHUNK):
        client.sadd(EXPIRED_KEY, *chunk)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    titles, neighbours, expired = read_aurora(
        now.date(),
        k=config.integer("NEIGHBOURS_PER_TITLE"),
        window_days=config.integer("CO_VIEW_WINDOW_DAYS"),
        per_viewer=config.integer("VIEWER_TITLES"),
        min_co=config.integer("MIN_CO_VIEWERS"),
    )
    write_cache(titles, neighbours, expired, config.integer("CACHE_TTL_SECONDS"), now)
    result = {"titles": len(titles), "neighbour_lists": len(neighbours),
              "neighbours": sum(len(n) for n in neighbours.values()), "expired": len(expired)}
    logger.info("recommendation cache refreshed", extra=result)
    return result
