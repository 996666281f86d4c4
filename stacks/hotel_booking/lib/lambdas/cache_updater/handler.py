"""DynamoDB stream (INVENTORY items only) -> the changed property's Redis snapshot.

Each property's changed nights are written in one version-guarded script, so only that
property's keys are touched and a replayed record never overwrites a newer value. (What
reconciliation rechecks comes from its own consumer of the same stream, not from here: it audits
this function.) A property whose write fails is
reported from its first record on (stream semantics: Lambda retries from the lowest failed
sequence number); bisect and the on-failure destination park what keeps failing.

SLA: a property's cache is updated < 1 s P95 after the table change.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from booking_common import cache
from booking_common.model import Night, split_night_pk
from redis.exceptions import RedisError
from tap_common import batch, config
from tap_common.cache import redis_client
from tap_common.dynamo import deserialize
from tap_common.logs import logger as make_logger

logger = make_logger()


class PropertyChanges:
    """One property's changes in one batch: nights to write, fields to drop, their records."""

    def __init__(self) -> None:
        self.nights: dict[str, Night] = {}
        self.removed: set[str] = set()
        self.sequence_numbers: list[str] = []


def group_by_property(records: list[dict[str, Any]]) -> tuple[dict[str, PropertyChanges], list[str]]:
    """Changes per property (the newest image of each night wins), and the sequence numbers of
    records that are not inventory changes at all (poison: reported, never dropped silently)."""
    changes: dict[str, PropertyChanges] = defaultdict(PropertyChanges)
    poison: list[str] = []
    for record in records:
        ddb = record.get("dynamodb", {})
        sequence = ddb.get("SequenceNumber", "")
        try:
            pk = deserialize(ddb["Keys"])["pk"]
            property_id, room_id, stay_date = split_night_pk(pk)
            entry = changes[property_id]
            if record["eventName"] == "REMOVE":
                entry.removed.add(cache.cache_field(room_id, stay_date))
                entry.nights.pop(pk, None)
            else:
                night = Night.from_item(deserialize(ddb["NewImage"]))
                current = entry.nights.get(pk)
                if current is None or current.version < night.version:
                    entry.nights[pk] = night
                entry.removed.discard(cache.cache_field(room_id, stay_date))
        except (KeyError, ValueError, TypeError):
            logger.error("not an inventory change", extra={"sequence_number": sequence})
            poison.append(sequence)
            continue
        entry.sequence_numbers.append(sequence)
    return changes, poison


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    changes, poison = group_by_property(records)
    ttl = config.integer("CACHE_TTL_SECONDS")
    failed = set(poison)
    client = redis_client()
    for property_id, entry in changes.items():
        try:
            written = cache.write_nights(client, property_id, list(entry.nights.values()), ttl) if entry.nights else 0
            cache.remove_fields(client, property_id, entry.removed)
        except RedisError:
            logger.exception("cache write failed", extra={"property_id": property_id})
            failed.update(entry.sequence_numbers)
            continue
        logger.info("cache updated", extra={"property_id": property_id, "nights": len(entry.nights),
                                            "written": written, "removed": len(entry.removed)})
    return batch.stream_response((r.get("dynamodb", {}).get("SequenceNumber", "") for r in records), failed)
