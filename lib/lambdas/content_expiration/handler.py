"""Step Functions tasks of the nightly content expiration (contract.md, "Step Functions").

find_expired → {"run_date", "content_ids", "next_after"}: one page (at most PAGE_SIZE ids) of the
licences that expired within EXPIRATION_LOOKBACK_DAYS before run_date, so a night's payloads stay
small and a missed night is caught up by the next; the state machine runs mark_expired
(content_catalog) and purge_cache (Redis) on each page, and meanwhile archive_views starts the
Athena CTAS of the previous day's raw events and, called again with its query_execution_id,
reports the query's state until it ends (a failed query fails the execution).
Every task is idempotent, so the state machine's retries are safe; errors propagate
to Step Functions (Retry, then Catch → Fail).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from expiry import (
    archive_query,
    archived_day,
    content_ids,
    page_after,
    query_execution_id,
    run_date,
)
from pg8000.native import Connection
from tap_common import aws, config, db, dynamo, schema
from tap_common.cache import redis_client
from tap_common.events import format_timestamp
from tap_common.logs import logger as make_logger

logger = make_logger()

SCAN_COUNT = 1000
# Content ids per page: 500 ids of at most 64 characters keep every state's payload far below
# Step Functions' 256 KB.
PAGE_SIZE = 500


@logger.inject_lambda_context
def find_expired(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    day, after = run_date(event), page_after(event)
    since = day - timedelta(days=config.integer("EXPIRATION_LOOKBACK_DAYS"))

    def query(conn: Connection) -> list[str]:
        rows = conn.run(
            "SELECT content_id FROM content_licenses"
            " WHERE license_expiry_date < :day AND license_expiry_date >= :since AND content_id > :after"
            " ORDER BY content_id LIMIT :limit",
            day=day, since=since, after=after, limit=PAGE_SIZE + 1,
        )
        return [row[0] for row in rows]

    db.ensure_schema("catalogue", schema.CATALOGUE)
    ids = db.in_transaction(query)
    page, more = ids[:PAGE_SIZE], len(ids) > PAGE_SIZE
    result = {"run_date": day.isoformat(), "content_ids": page, "next_after": page[-1] if more else None}
    logger.info("expired content found", extra={"run_date": day.isoformat(), "after": after, "count": len(page),
                                                 "more": more})
    return result


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
    """Start the CTAS archiving the previous day's raw events; given the query_execution_id of that
    start, report the query's state instead. The request token is derived from the archived day, so
    a retried start gets the same query execution."""
    day, running = run_date(event), query_execution_id(event)
    athena = aws.client("athena")
    if running is not None:
        query = athena.get_query_execution(QueryExecutionId=running)["QueryExecution"]
        status = query["Status"]
        result = {"run_date": day.isoformat(), "query_execution_id": running, "table": event.get("table"),
                  "state": status["State"], "reason": status.get("StateChangeReason", ""),
                  "data_scanned_bytes": query.get("Statistics", {}).get("DataScannedInBytes", 0)}
        logger.info("archive query state", extra=result)
        return result
    archived = archived_day(day)
    table, sql = archive_query(
        config.require("GLUE_DATABASE"),
        config.require("RAW_TABLE"),
        config.require("ARCHIVE_BUCKET"),
        config.optional("ARCHIVE_PREFIX", "viewing/"),
        archived,
    )
    token = hashlib.sha256(f"{table}|{sql}".encode()).hexdigest()
    response = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": config.require("GLUE_DATABASE")},
        WorkGroup=config.require("ATHENA_WORKGROUP"),
        ClientRequestToken=token,
    )
    logger.info("archive query started", extra={"table": table, "archived_day": archived.isoformat(),
                                                 "query_execution_id": response["QueryExecutionId"]})
    return {"run_date": day.isoformat(), "query_execution_id": response["QueryExecutionId"], "table": table,
            "state": "QUEUED"}
