"""Reconciliation: every changed room-night rechecked within 30 s, and a wider audit every 5 minutes.

Three callers, one comparison (consistency.compare) of each night in the primary table (strongly
consistent) with its allocations, the same item in every replica region, the property's Redis
snapshot and what the PMS acknowledged (Aurora reader):

- the inventory table's stream (its second consumer, beside cache_updater, which it audits): each
  batch of changed nights goes on the recheck queue as one message (at the queue's own delay), and
  into the hot set the audit samples.
- the recheck queue: its nights are compared; findings go to overbooking_resolver at once
  (asynchronous invoke); a night with a copy still behind but within its grace (cache 5 s,
  replicas 10 s, PMS 2 min) goes back on the queue, delayed until that grace ends, and is compared
  again: every copy of every changed night is compared once its grace has passed. The delay from
  the change to the first comparison is published as HotRecheckLag (alarm). A message that cannot
  be checked is retried, then parked in the recheck DLQ (alarm).
- Step Functions, every 5 minutes (the wider audit): the room-nights its input names, or the newest
  MAX_HOT_KEYS of the hot set; its findings go to the resolver through the state machine.

SLA: conflicts detected within 5 s of the collision (the first comparison, ~1-3 s after the change),
hot bookings rechecked within 30 s (the cache's and the replicas' graces, then one comparison);
the audit finishes well within its 2-minute budget (MAX_HOT_KEYS bounds it). A Redis outage skips the cache's comparison
and is logged; the other copies are still compared.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from booking_common import cache
from booking_common.model import (
    IDENTIFIER,
    Night,
    inventory_key,
    split_night_pk,
)
from booking_common.store import allocations
from botocore.exceptions import BotoCoreError, ClientError
from consistency import Copies, Finding, Graces, compare, pending_seconds
from pg8000.exceptions import DatabaseError, InterfaceError
from redis.exceptions import RedisError
from tap_common import aws, batch, config, db
from tap_common.cache import redis_client
from tap_common.dynamo import batch_get, deserialize
from tap_common.logs import logger as make_logger

logger = make_logger()

MAX_FINDINGS = 200  # keeps the task's output far below Step Functions' 256 KB
NIGHTS_PER_MESSAGE = 100  # ~6 KB of keys, far below SQS's 256 KB
MAX_DELAY_S = 900  # SQS's longest message delay


def _valid_pk(pk: Any) -> bool:
    parts = pk.split("#") if isinstance(pk, str) else []
    return len(parts) == 3 and all(IDENTIFIER.match(p) for p in parts[:2])


def room_nights(event: dict[str, Any], now: float) -> list[str]:
    named = event.get("room_nights")
    if named is not None:
        if not isinstance(named, list):  # a string would be checked letter by letter: nothing, silently
            raise ValueError(f"room_nights must be a list of 'property#room#date' keys, not {type(named).__name__}")
        return [pk for pk in named if _valid_pk(pk)][: config.integer("MAX_HOT_KEYS")]
    since = now - config.integer("RECONCILE_WINDOW_SECONDS")
    return cache.hot_keys(redis_client(), since, config.integer("MAX_HOT_KEYS"))


def sold_units(table: str, pk: str) -> int:
    return sum(int(a["units"]) for a in allocations(table, pk, projection="units"))


def pms_acknowledged(pks: list[str]) -> dict[str, dict[str, int]]:
    parts = [split_night_pk(pk) for pk in pks]
    try:
        rows = db.in_transaction(lambda conn: conn.run(
            """SELECT property_id, room_id, to_char(stay_date, 'YYYY-MM-DD'), available_units, version
               FROM pms_inventory
               WHERE (property_id, room_id, stay_date) IN
                     (SELECT * FROM unnest(CAST(:p AS text[]), CAST(:r AS text[]), CAST(:d AS date[])))""",
            p=[p[0] for p in parts], r=[p[1] for p in parts], d=[p[2] for p in parts]))
    except DatabaseError as exc:
        if "42P01" not in str(exc):  # undefined_table: no PMS has acknowledged anything yet
            raise
        return {}
    return {f"{p}#{r}#{d}": {"available_units": int(units), "version": int(version)}
            for p, r, d, units, version in rows}


class Check:
    """What one comparison of a set of nights found."""

    def __init__(self) -> None:
        self.checked = 0
        self.findings: list[Finding] = []
        self.pending: dict[str, float] = {}  # pk -> seconds until a copy's grace ends
        self.checked_at = datetime.now(UTC)


def _cached(nights: list[Night]) -> dict[str, dict[str, dict[str, int] | None]]:
    by_property: dict[str, list[Night]] = defaultdict(list)
    for night in nights:
        by_property[night.property_id].append(night)
    cached: dict[str, dict[str, dict[str, int] | None]] = {}
    try:
        client = redis_client()
        for property_id, group in by_property.items():
            cached[property_id] = cache.read_fields(client, property_id, [cache.cache_field(n.room_id, n.stay_date)
                                                                          for n in group])
    except RedisError:
        # The cache is out; its comparison waits for the next check, the other copies' does not.
        logger.exception("cache unreachable: compared without it", extra={"properties": len(by_property)})
        return {}
    return cached


def check(pks: list[str]) -> Check:
    table = config.require("INVENTORY_TABLE")
    nights = [Night.from_item(item) for item in batch_get({table: [inventory_key(pk) for pk in pks]},
                                                          consistent=True)[table]]
    keys = [inventory_key(n.pk) for n in nights]
    replicas: dict[str, dict[str, dict[str, Any]]] = {}
    for region in filter(None, config.optional("REPLICA_REGIONS", "").split(",")):
        replicas[region] = {item["pk"]: item for item in batch_get({table: keys}, region=region)[table]}
    cached = _cached(nights)
    pms = pms_acknowledged([n.pk for n in nights]) if nights else {}
    graces = Graces(config.number("CACHE_GRACE_SECONDS"), config.number("REPLICA_LAG_SECONDS"),
                    config.number("PMS_GRACE_SECONDS"))
    result = Check()
    for night in nights:
        snapshot = cached.get(night.property_id, {})
        copies = Copies(sold=sold_units(table, night.pk),
                        cache=snapshot.get(cache.cache_field(night.room_id, night.stay_date)),
                        cache_live=bool(snapshot),
                        replicas={region: items.get(night.pk) for region, items in replicas.items()},
                        pms=pms.get(night.pk))
        result.findings += compare(night, copies, result.checked_at, graces)
        wait = pending_seconds(night, copies, result.checked_at, graces)
        if wait > 0:
            result.pending[night.pk] = wait
    result.checked = len(nights)
    return result


def report(result: Check, source: str) -> dict[str, Any]:
    counts: dict[str, int] = defaultdict(int)
    for finding in result.findings:
        counts[finding.kind] += 1
    logger.info("reconciliation checked", extra={"source": source, "checked": result.checked,
                                                 "findings": dict(counts), "pending": len(result.pending)})
    return {"checked": result.checked, "checked_at": result.checked_at.isoformat(),
            "finding_count": len(result.findings), "counts": dict(counts),
            "findings": [f.as_dict() for f in result.findings[:MAX_FINDINGS]]}


def _send(bodies: list[tuple[dict[str, Any], int | None]]) -> None:
    """Recheck messages (body, delay seconds or None for the queue's), ten per call; raises when
    any is refused."""
    sqs, queue = aws.client("sqs"), config.require("RECHECK_QUEUE_URL")
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(body), **({} if delay is None else {"DelaySeconds": delay})}
                   for i, (body, delay) in enumerate(bodies[start:start + 10])]
        refused = sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed", [])
        if refused:
            raise RuntimeError(f"{len(refused)} recheck messages refused: {refused[0].get('Code')}")


def feed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Stream batch -> the recheck queue (at the queue's delay) and the hot set."""
    changed: dict[str, float] = {}
    for record in records:
        ddb = record.get("dynamodb", {})
        pk = deserialize(ddb.get("Keys", {})).get("pk")
        if _valid_pk(pk) and record.get("eventName") != "REMOVE":
            changed[pk] = float(ddb.get("ApproximateCreationDateTime") or time.time())
    sequence_numbers = [r.get("dynamodb", {}).get("SequenceNumber", "") for r in records]
    pks = list(changed)
    try:
        _send([({"room_nights": pks[i:i + NIGHTS_PER_MESSAGE],
                 "changed_at": min(changed[pk] for pk in pks[i:i + NIGHTS_PER_MESSAGE])}, None)
               for i in range(0, len(pks), NIGHTS_PER_MESSAGE)])
    except (ClientError, BotoCoreError, RuntimeError):
        logger.exception("changed nights not queued for their recheck", extra={"nights": len(pks)})
        return batch.stream_response(sequence_numbers, sequence_numbers)
    if changed:
        try:
            cache.mark_hot(redis_client(), changed, config.integer("RECONCILE_WINDOW_SECONDS"), time.time())
        except RedisError:  # the recheck is queued: only the audit's sample misses these nights
            logger.exception("hot marks not recorded", extra={"nights": len(changed)})
    logger.info("changed nights queued for their recheck", extra={"nights": len(pks)})
    return batch.stream_response(sequence_numbers, [])


def follow_ups(pending: dict[str, float]) -> list[tuple[dict[str, Any], int | None]]:
    """Recheck messages for nights still within a grace: one per delay (each night is looked at again
    when its own grace ends, not when the longest one in its batch does), at most 100 nights each."""
    by_delay: dict[int, list[str]] = defaultdict(list)
    for pk, wait in pending.items():
        by_delay[min(MAX_DELAY_S, math.ceil(wait) + 1)].append(pk)
    return [({"room_nights": pks[i:i + NIGHTS_PER_MESSAGE]}, delay)
            for delay, pks in sorted(by_delay.items()) for i in range(0, len(pks), NIGHTS_PER_MESSAGE)]


def resolve(findings: list[Finding]) -> None:
    """Hand findings to overbooking_resolver at once (asynchronous: retried by Lambda, then parked
    in async_failures)."""
    for start in range(0, len(findings), MAX_FINDINGS):
        payload = {"source": "hot_recheck", "findings": [f.as_dict() for f in findings[start:start + MAX_FINDINGS]]}
        aws.client("lambda").invoke(FunctionName=config.require("RESOLVER_FUNCTION"), InvocationType="Event",
                                    Payload=json.dumps(payload).encode())


def recheck(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Recheck queue messages -> compare, resolve, recheck later what is still within a grace."""
    pks: dict[str, None] = {}
    malformed: list[str] = []
    changed_at: list[float] = []
    for record in records:
        try:
            body = json.loads(record["body"])
            named = body["room_nights"]
            if not isinstance(named, list):
                raise TypeError
            pks.update(dict.fromkeys(pk for pk in named if _valid_pk(pk)))
            if "changed_at" in body:  # a first comparison (follow-ups carry no change time)
                changed_at.append(float(body["changed_at"]))
        except (KeyError, TypeError, ValueError):
            logger.error("not a recheck message", extra={"message_id": record.get("messageId")})
            malformed.append(record.get("messageId", ""))
    try:
        result = check(list(pks))
        if result.findings:
            resolve(result.findings)
        _send(follow_ups(result.pending))
    except (ClientError, BotoCoreError, DatabaseError, InterfaceError, RuntimeError):
        logger.exception("recheck failed: its messages come back", extra={"nights": len(pks)})
        return batch.response(r.get("messageId", "") for r in records)
    if changed_at:
        _publish_lag(time.time() - min(changed_at))
    report(result, "hot_recheck")
    return batch.response(malformed)


def _publish_lag(seconds: float) -> None:
    try:
        aws.client("cloudwatch").put_metric_data(Namespace=config.require("METRICS_NAMESPACE"), MetricData=[
            {"MetricName": "HotRecheckLag", "Value": round(seconds, 3), "Unit": "Seconds"}])
    except (ClientError, BotoCoreError):  # the nights are checked: only the SLA metric misses a point
        logger.exception("HotRecheckLag not published", extra={"seconds": seconds})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = (event or {}).get("Records")
    if records and records[0].get("eventSource") == "aws:dynamodb":
        return feed(records)
    if records and records[0].get("eventSource") == "aws:sqs":
        return recheck(records)
    return report(check(room_nights(event or {}, time.time())), "audit")
