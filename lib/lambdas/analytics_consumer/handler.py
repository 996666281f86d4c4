"""SQS (analytics FIFO queue) → Aurora content_stats and viewer_titles, one transaction per batch.

In that transaction the batch's event ids are inserted into processed_events
(`ON CONFLICT DO NOTHING RETURNING`), and only the ones that were new are aggregated per
content_id and upserted with one UNNEST statement, so a redelivered message never counts
twice. The same new completions that reach the full-completion ratio upsert viewer_titles
(who finished what, and when): the co-viewing data the cache refresh turns into `cf:*`.
Ids older than PROCESSED_EVENTS_RETENTION_DAYS (longer than a message can wait on the queue
and its dead-letter queue) are deleted in the same transaction, a bounded number per batch,
so the table holds the redelivery window and no more. Unparseable messages (and, FIFO
order, the later messages of their group) are reported as failures; if the transaction fails
every message is.
"""

from __future__ import annotations

from typing import Any

from aggregate import Completion, parse_message, totals_by_content, viewer_titles
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pg8000.exceptions import DatabaseError, InterfaceError
from pg8000.native import Connection
from tap_common import batch, config, db, schema
from tap_common.logs import logger as make_logger

logger = make_logger()

# Old ids deleted per batch at most: far more than a batch inserts, so the table shrinks back to
# the retention window after any backlog, and no batch waits on a long delete.
PRUNE_PER_BATCH = 1000

INSERT_PROCESSED = """
    INSERT INTO processed_events (event_id, processed_at)
    SELECT id, now() FROM unnest(CAST(:ids AS text[])) AS t(id)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id"""

UPSERT_STATS = """
    INSERT INTO content_stats AS s
        (content_id, view_count, full_completions, completion_ratio_sum, completion_rate, updated_at)
    SELECT content_id, views, fulls, ratio_sum, fulls::double precision / views, now()
    FROM unnest(CAST(:content_ids AS text[]), CAST(:views AS bigint[]),
                CAST(:fulls AS bigint[]), CAST(:sums AS double precision[]))
        AS t(content_id, views, fulls, ratio_sum)
    ON CONFLICT (content_id) DO UPDATE SET
        view_count = s.view_count + EXCLUDED.view_count,
        full_completions = s.full_completions + EXCLUDED.full_completions,
        completion_ratio_sum = s.completion_ratio_sum + EXCLUDED.completion_ratio_sum,
        completion_rate = (s.full_completions + EXCLUDED.full_completions)::double precision
                          / (s.view_count + EXCLUDED.view_count),
        updated_at = now()"""

UPSERT_VIEWER_TITLES = """
    INSERT INTO viewer_titles AS v (user_id, content_id, full_completions, last_completed_at)
    SELECT user_id, content_id, n, now()
    FROM unnest(CAST(:users AS text[]), CAST(:content_ids AS text[]), CAST(:counts AS bigint[]))
        AS t(user_id, content_id, n)
    ON CONFLICT (user_id, content_id) DO UPDATE SET
        full_completions = v.full_completions + EXCLUDED.full_completions,
        last_completed_at = now()"""

PRUNE_PROCESSED = """
    DELETE FROM processed_events WHERE event_id IN (
        SELECT event_id FROM processed_events
        WHERE processed_at < now() - make_interval(days => CAST(:days AS int))
        ORDER BY processed_at LIMIT CAST(:limit AS int))"""

DB_ERRORS = (DatabaseError, InterfaceError, OSError, ClientError, BotoCoreError, KeyError)


def record_batch(completions: list[Completion], full_ratio: float, retention_days: int) -> int:
    """Apply the completions in one transaction; returns how many were new."""

    def work(conn: Connection) -> list[Completion]:
        conn.run(PRUNE_PROCESSED, days=retention_days, limit=PRUNE_PER_BATCH)
        ids = sorted({c.event_id for c in completions})
        fresh = {row[0] for row in conn.run(INSERT_PROCESSED, ids=ids)}
        counted = list({c.event_id: c for c in completions if c.event_id in fresh}.values())
        totals = totals_by_content(counted, full_ratio)
        if totals:
            conn.run(
                UPSERT_STATS,
                content_ids=list(totals),
                views=[t.views for t in totals.values()],
                fulls=[t.full_completions for t in totals.values()],
                sums=[t.ratio_sum for t in totals.values()],
            )
        pairs = viewer_titles(counted, full_ratio)
        if pairs:
            conn.run(UPSERT_VIEWER_TITLES, users=[p[0] for p in pairs], content_ids=[p[1] for p in pairs],
                     counts=[p[2] for p in pairs])
        return counted

    db.ensure_schema("analytics", schema.ANALYTICS)
    counted = db.in_transaction(work)
    for completion in counted:  # one line per completion: the completion-funnel query counts them
        logger.info("completion counted", extra={
            "event_id": completion.event_id, "content_id": completion.content_id,
            "completion_ratio": completion.ratio})
    return len(counted)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = list(SQSEvent(event).records)
    order = [(r.message_id, r.attributes.message_group_id or r.message_id) for r in records]
    poison: list[str] = []
    parsed: dict[str, Completion] = {}
    for record in records:
        try:
            parsed[record.message_id] = parse_message(record.body)
        except ValueError as exc:
            logger.warning("poison message", extra={"message_id": record.message_id, "reason": str(exc)})
            poison.append(record.message_id)
    failed = batch.fifo_failures(order, poison)
    completions = [c for message_id, c in parsed.items() if message_id not in failed]
    if completions:
        try:
            fresh = record_batch(completions, config.full_completion_ratio(),
                                 config.integer("PROCESSED_EVENTS_RETENTION_DAYS"))
        except DB_ERRORS:
            logger.exception("analytics transaction failed; whole batch reported")
            return batch.response(message_id for message_id, _ in order)
        logger.info("batch recorded", extra={"messages": len(completions), "new_events": fresh})
    return batch.response(failed)
