"""Step Functions task: recheck the room-nights changed in the last window.

Reads each night in the primary table (strongly consistent) with its allocations, the same
item in every replica region, the property's Redis snapshot and what the PMS acknowledged
(Aurora reader), and reports every difference (consistency.compare). The input may name
room-nights to check (`room_nights`); otherwise the hot set cache_updater keeps decides.

SLA: a run finishes well within the state machine's 2-minute budget (MAX_HOT_KEYS bounds it).
"""

from __future__ import annotations

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
from consistency import Copies, Finding, Graces, compare
from pg8000.exceptions import DatabaseError
from tap_common import config, db
from tap_common.cache import redis_client
from tap_common.dynamo import batch_get
from tap_common.logs import logger as make_logger

logger = make_logger()

MAX_FINDINGS = 200  # keeps the task's output far below Step Functions' 256 KB


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


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    table = config.require("INVENTORY_TABLE")
    now = time.time()
    pks = room_nights(event or {}, now)
    nights = [Night.from_item(item) for item in batch_get({table: [inventory_key(pk) for pk in pks]},
                                                          consistent=True)[table]]
    keys = [inventory_key(n.pk) for n in nights]
    replicas: dict[str, dict[str, dict[str, Any]]] = {}
    for region in filter(None, config.optional("REPLICA_REGIONS", "").split(",")):
        replicas[region] = {item["pk"]: item for item in batch_get({table: keys}, region=region)[table]}
    by_property: dict[str, list[Night]] = defaultdict(list)
    for night in nights:
        by_property[night.property_id].append(night)
    cached: dict[str, dict[str, dict[str, int] | None]] = {}
    client = redis_client()
    for property_id, group in by_property.items():
        cached[property_id] = cache.read_fields(client, property_id, [cache.cache_field(n.room_id, n.stay_date)
                                                                      for n in group])
    pms = pms_acknowledged([n.pk for n in nights]) if nights else {}
    graces = Graces(config.number("CACHE_GRACE_SECONDS"), config.number("REPLICA_LAG_SECONDS"),
                    config.number("PMS_GRACE_SECONDS"))
    checked_at = datetime.now(UTC)
    findings: list[Finding] = []
    for night in nights:
        snapshot = cached[night.property_id]
        copies = Copies(sold=sold_units(table, night.pk),
                        cache=snapshot.get(cache.cache_field(night.room_id, night.stay_date)),
                        cache_live=bool(snapshot),
                        replicas={region: items.get(night.pk) for region, items in replicas.items()},
                        pms=pms.get(night.pk))
        findings += compare(night, copies, checked_at, graces)
    counts: dict[str, int] = defaultdict(int)
    for finding in findings:
        counts[finding.kind] += 1
    logger.info("reconciliation checked", extra={"checked": len(nights), "findings": dict(counts)})
    return {"checked": len(nights), "checked_at": checked_at.isoformat(), "finding_count": len(findings),
            "counts": dict(counts), "findings": [f.as_dict() for f in findings[:MAX_FINDINGS]]}
