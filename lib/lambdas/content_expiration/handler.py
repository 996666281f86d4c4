"""Step Functions tasks of the nightly content expiration (contract.md, "Step Functions").

find_expired → {"run_date", "content_ids"}; then, in parallel on that output,
mark_expired (content_catalog), purge_cache (Redis) and archive_views (Athena CTAS).
Every task is idempotent, so the state machine's retries are safe; errors propagate
to Step Functions (Retry, then Catch → Fail).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from expiry import archive_query, content_ids, run_date
from pg8000.native import Connection
from tap_common import aws, config, db, dynamo
from tap_common.cache import redis_client
from tap_common.events import format_timestamp
from tap_common.logs import logger as make_logger

logger = make_logger()

LICENSE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS content_licenses (
        content_id text PRIMARY KEY,
        title text,
        license_expiry_date date)""",
)
SCAN_COUNT = 1000


@logger.inject_lambda_context
def find_expired(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    day = run_date(event)

    def query(conn: Connection) -> list[str]:
        rows = conn.run(
            "SELECT content_id FROM content_licenses WHERE license_expiry_date < :day ORDER BY content_id",
            day=day,
        )
        return [row[0] for row in rows]

    db.ensure_schema("licenses", LICENSE_SCHEMA)
    ids = db.in_transaction(query)
    logger.info("expired content found", extra={"run_date": day.isoformat(), "count": len(ids)})
    return {"run_date": day.isoformat(), "content_ids": ids}


@logger.inject_lambda_context
def mark_expired(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Set expired=true on catalog items not yet expired; unknown ids are not created."""
    day, ids = run_date(event), content_ids(event)
    table = config.require("CATALOG_TABLE")
    items = dynamo.batch_get({table: [{"content_id": c} for c in ids]}, projection={table: "content_id, expired"})
    catalog = {str(item["content_id"]): bool(item.get("expired", False)) for item in items[table]}
    to_mark = [c for c in ids if c in catalog and not catalog[c]]
    now = format_timestamp(datetime.now(UTC))
    marked = 0
    for content_id in to_mark:
        try:
            aws.client("dynamodb").update_item(
                TableName=table,
                Key=dynamo.serialize({"content_id": content_id}),
                UpdateExpression="SET expired = :true, expired_at = :now",
                ConditionExpression="attribute_exists(content_id) AND (attribute_not_exists(expired) OR expired = :false)",
                ExpressionAttributeValues=dynamo.serialize({":true": True, ":false": False, ":now": now}),
            )
            marked += 1
        except aws.client("dynamodb").exceptions.ConditionalCheckFailedException:
            logger.info("already expired by a concurrent run", extra={"content_id": content_id})
    already = sum(1 for c in ids if catalog.get(c))
    result = {
        "run_date": day.isoformat(),
        "marked": marked,
        "already_expired": already + len(to_mark) - marked,
        "not_in_catalog": sum(1 for c in ids if c not in catalog),
    }
    logger.info("catalog updated", extra=result)
    return result


@logger.inject_lambda_context
def purge_cache(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Add the ids to `expired:content`, drop their own keys, and remove them from every
    `recs:*` and `cf:*` sorted set (SCAN in pages, ZREM in pipelines)."""
    day, ids = run_date(event), content_ids(event)
    if not ids:
        return {"run_date": day.isoformat(), "purged": 0, "entries_removed": 0}
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.sadd("expired:content", *ids)
    pipe.delete(*(f"content:{c}" for c in ids), *(f"cf:{c}" for c in ids))
    pipe.execute()
    removed = 0
    for pattern in ("recs:*", "cf:*"):
        pipe, queued = client.pipeline(transaction=False), 0
        for key in client.scan_iter(match=pattern, count=SCAN_COUNT, _type="zset"):
            pipe.zrem(key, *ids)
            queued += 1
            if queued == SCAN_COUNT:
                removed += sum(pipe.execute())
                pipe, queued = client.pipeline(transaction=False), 0
        if queued:
            removed += sum(pipe.execute())
    result = {"run_date": day.isoformat(), "purged": len(ids), "entries_removed": removed}
    logger.info("cache purged", extra=result)
    return result


@logger.inject_lambda_context
def archive_views(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Start the CTAS archiving the viewing events of the expired content. The request
    token is derived from the input, so a retried task gets the same query execution."""
    day, ids = run_date(event), content_ids(event)
    if not ids:
        return {"run_date": day.isoformat(), "query_execution_id": None}
    table, sql = archive_query(
        config.require("GLUE_DATABASE"),
        config.require("RAW_TABLE"),
        config.require("ARCHIVE_BUCKET"),
        config.optional("ARCHIVE_PREFIX", "viewing/"),
        day,
        ids,
    )
    token = hashlib.sha256(f"{day.isoformat()}|{','.join(ids)}".encode()).hexdigest()
    response = aws.client("athena").start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": config.require("GLUE_DATABASE")},
        WorkGroup=config.require("ATHENA_WORKGROUP"),
        ClientRequestToken=token,
    )
    logger.info("archive query started", extra={"table": table, "query_execution_id": response["QueryExecutionId"]})
    return {"run_date": day.isoformat(), "query_execution_id": response["QueryExecutionId"], "table": table}
