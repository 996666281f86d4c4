"""DynamoDB stream (user_activity) → user_recommendations.

Only SUMMARY item changes trigger work (one per user per activity transaction); a batch
is handled per user once. The ranking and its fallbacks are described in ranking.py.
I/O per batch: one Query per user (recent events), two Redis pipelines for the whole
batch (neighbours + expired set, then popularity), one SageMaker call per user with
candidates, BatchWriteItem for the results (plus one BatchGetItem of the previous lists
when Redis is down), and one Redis pipeline caching `recs:{user_id}`.
Records of users whose read or write failed are reported in `batchItemFailures`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from ranking import (
    FALLBACK,
    MODEL,
    Ranked,
    View,
    collaborative_scores,
    dynamo_only_scores,
    excluded_ids,
    merge_model_scores,
    seeds,
    top_n,
)
from redis.exceptions import RedisError
from tap_common import aws, batch, config, dynamo
from tap_common.cache import redis_client
from tap_common.config import ConfigError
from tap_common.events import format_timestamp
from tap_common.logs import logger as make_logger

logger = make_logger()

SUMMARY = "SUMMARY"
RECENT_EVENTS = 50
NEIGHBOURS_PER_SEED = 50
MAX_MODEL_CANDIDATES = 100
AWS_ERRORS = (ClientError, BotoCoreError, dynamo.UnprocessedError)


@dataclass(frozen=True)
class CacheInputs:
    neighbours: dict[str, list[tuple[str, float]]]
    popularity: dict[str, float]
    expired: set[str]


def _changed_users(event: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, dict[str, float]]]:
    """user → stream sequence numbers, and user → progress_by_content of the newest image."""
    sequences: dict[str, list[str]] = {}
    progress: dict[str, dict[str, float]] = {}
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if stream is None or record.event_name == DynamoDBRecordEventName.REMOVE:
            continue
        if stream.keys.get("timestamp") != SUMMARY:
            continue
        user = str(stream.keys["user_id"])
        sequences.setdefault(user, []).append(str(stream.sequence_number))
        image = stream.new_image or {}
        progress[user] = {str(k): float(v) for k, v in image.get("progress_by_content", {}).items()}
    return sequences, progress


def _recent_views(table: str, user: str) -> list[View]:
    response = aws.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="user_id = :u AND #ts < :summary",
        ExpressionAttributeNames={"#ts": "timestamp"},
        ExpressionAttributeValues=dynamo.serialize({":u": user, ":summary": SUMMARY}),
        ProjectionExpression="content_id, progress",
        ScanIndexForward=False,
        Limit=RECENT_EVENTS,
    )
    items = [dynamo.deserialize(item) for item in response.get("Items", [])]
    return [View(str(item["content_id"]), float(item.get("progress", 0))) for item in items]


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _cache_inputs(seed_ids: Sequence[str]) -> CacheInputs | None:
    """Neighbours, popularity and the expired set in two pipelines; None when Redis is unusable."""
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        for content_id in seed_ids:
            pipe.zrevrange(f"cf:{content_id}", 0, NEIGHBOURS_PER_SEED - 1, withscores=True)
        pipe.smembers("expired:content")
        *cf, expired = pipe.execute()
        neighbours = {
            seed: [(str(member), _float(score)) for member, score in pairs] for seed, pairs in zip(seed_ids, cf)
        }
        candidates = sorted({member for pairs in neighbours.values() for member, _ in pairs})
        pipe = client.pipeline(transaction=False)
        for content_id in candidates:
            pipe.hget(f"content:{content_id}", "popularity")
        popularity = {c: _float(p) for c, p in zip(candidates, pipe.execute())}
    except (RedisError, OSError, ConfigError, ClientError, BotoCoreError, KeyError):
        logger.exception("redis unavailable; using the DynamoDB-only ranking")
        return None
    return CacheInputs(neighbours, popularity, {str(member) for member in expired})


def _model_scores(user: str, seed_views: Sequence[View], fallback: Mapping[str, float]) -> list[tuple[str, float]] | None:
    """SageMaker scores for the candidates, or None when the endpoint is unusable."""
    candidates = [c for c, _ in sorted(fallback.items(), key=lambda item: (-item[1], item[0]))][:MAX_MODEL_CANDIDATES]
    if not candidates:
        return None
    body = {"user_id": user, "recent_content_ids": [v.content_id for v in seed_views], "candidates": candidates}
    try:
        response = aws.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=config.require("SAGEMAKER_ENDPOINT"),
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(body).encode("utf-8"),
        )
        answer = json.loads(response["Body"].read())
        return [(str(item["content_id"]), float(item["score"])) for item in answer["recommendations"]]
    except (ClientError, BotoCoreError, ValueError, KeyError, TypeError):
        logger.exception("sagemaker unavailable; using the Redis fallback ranking", extra={"user_id": user})
        return None


def _previous_lists(table: str, users: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    try:
        items = dynamo.batch_get({table: [{"user_id": user} for user in users]})[table]
    except AWS_ERRORS:
        logger.exception("previous recommendations unreadable; ranking without them")
        return {}
    return {
        str(item["user_id"]): [(str(entry["content_id"]), float(entry["score"])) for entry in item.get("items", [])]
        for item in items
    }


def _rank(
    user: str,
    views: list[View],
    progress: Mapping[str, float],
    cache: CacheInputs | None,
    previous: Mapping[str, list[tuple[str, float]]],
    n: int,
    ratio: float,
) -> tuple[list[Ranked], str]:
    history = [*views, *(View(c, p) for c, p in progress.items())]
    if cache is None:
        excluded = excluded_ids(history, (), ratio)
        return top_n(dynamo_only_scores(views, previous.get(user, []), excluded, ratio), n), FALLBACK
    seed_views = seeds(views)
    excluded = excluded_ids(history, cache.expired, ratio)
    fallback = collaborative_scores(seed_views, cache.neighbours, cache.popularity, excluded)
    model = _model_scores(user, seed_views, fallback)
    if model is None:
        return top_n(fallback, n), FALLBACK
    ranked = merge_model_scores(model, fallback, set(fallback), n)
    # A model that scored none of the candidates (titles it never saw) leaves the fallback's list.
    return ranked, MODEL if any(r.source == MODEL for r in ranked) else FALLBACK


def _cache_lists(lists: Mapping[str, list[Ranked]], ttl_seconds: int) -> None:
    try:
        pipe = redis_client().pipeline(transaction=False)
        for user, ranked in lists.items():
            key = f"recs:{user}"
            pipe.delete(key)
            if ranked:
                pipe.zadd(key, {r.content_id: r.score for r in ranked})
                pipe.expire(key, ttl_seconds)
        pipe.execute()
    except (RedisError, OSError, ConfigError, ClientError, BotoCoreError, KeyError):
        # user_recommendations is the source of truth; the cache refills on the next change.
        logger.exception("recs cache not refreshed")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sequences, progress = _changed_users(event)
    if not sequences:
        return batch.response([])
    activity_table = config.require("ACTIVITY_TABLE")
    recs_table = config.require("RECOMMENDATIONS_TABLE")
    n = config.integer("TOP_N", 10)
    ratio = config.full_completion_ratio()
    ttl_seconds = config.integer("RECOMMENDATION_TTL_HOURS", 24) * 3600

    failed_users: list[str] = []
    views: dict[str, list[View]] = {}
    for user in sequences:
        try:
            views[user] = _recent_views(activity_table, user)
        except AWS_ERRORS:
            logger.exception("recent views unreadable", extra={"user_id": user})
            failed_users.append(user)

    seed_ids = sorted({v.content_id for user_views in views.values() for v in seeds(user_views)})
    cache = _cache_inputs(seed_ids)
    previous = _previous_lists(recs_table, list(views)) if cache is None else {}

    now = time.time()
    generated_at = format_timestamp(datetime.fromtimestamp(now, tz=UTC))
    lists: dict[str, list[Ranked]] = {}
    items = []
    for user, user_views in views.items():
        ranked, source = _rank(user, user_views, progress.get(user, {}), cache, previous, n, ratio)
        lists[user] = ranked
        items.append(
            {
                "user_id": user,
                "items": [{"content_id": r.content_id, "score": round(r.score, 6), "rank": r.rank, "source": r.source}
                          for r in ranked],
                "generated_at": generated_at,
                "source": source,
                config.optional("TTL_ATTRIBUTE", "expires_at"): int(now) + ttl_seconds,
            }
        )
    try:
        unprocessed = dynamo.batch_put(recs_table, items)
        failed_users.extend(str(item["user_id"]) for item in unprocessed)
    except AWS_ERRORS:
        logger.exception("recommendations not written")
        failed_users.extend(views)
    written = {user: ranked for user, ranked in lists.items() if user not in failed_users}
    if cache is not None and written:
        _cache_lists(written, ttl_seconds)
    logger.info("recommendations written", extra={"users": len(written), "failed_users": len(set(failed_users))})
    return batch.response(seq for user in failed_users for seq in sequences[user])
