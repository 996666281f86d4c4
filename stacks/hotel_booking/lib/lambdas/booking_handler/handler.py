"""HTTP API (payload 2.0) -> booking_handler.

POST /book reserves every night of a stay in one DynamoDB transaction (optimistic lock on each
night's version), answers 201 with the booking, and publishes the changed nights to
inventory_updates for the property's PMS. A lost race is retried with fresh reads; then 409.
GET /availability/{property_id} answers from the property's Redis snapshot, reading the table
for what the cache does not hold.

SLA: the booking path answers in < 400 ms P95 (reads, one transaction, one publish).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from booking_common import cache
from booking_common.model import (
    Night,
    Property,
    booking_key,
    inventory_key,
    night_pk,
)
from booking_common.store import read_property
from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError
from request import BookingRequest, parse_availability, parse_booking
from reservation import (
    NotBookable,
    booking_id_for,
    cancellation,
    check_offer,
    nights_to_reserve,
    reserved,
    transaction,
)
from tap_common import aws, config, http
from tap_common.cache import redis_client
from tap_common.dynamo import batch_get, deserialize, serialize
from tap_common.http import Rejected
from tap_common.logs import logger as make_logger

logger = make_logger()


class LostRace(Exception):
    """Every attempt lost its optimistic lock to a concurrent booking."""


def _existing_booking(table: str, request: BookingRequest) -> dict[str, Any]:
    item = aws.client("dynamodb").get_item(TableName=table, Key=serialize(booking_key(booking_id_for(request.request_id))),
                                           ConsistentRead=True)
    return deserialize(item["Item"])


def _booking_body(booking: dict[str, Any]) -> dict[str, Any]:
    rooms = booking["rooms"]
    return {"booking_id": booking["booking_id"], "status": booking["status"], "property_id": booking["property_id"],
            "units": int(booking["units"]), "nights": [{"stay_date": d, "room_id": rooms[d]} for d in sorted(rooms)]}


def _reserve(table: str, request: BookingRequest) -> tuple[list[Night], dict[str, Any] | None]:
    """The reserved nights, or ([], the earlier booking) when this request was already booked.

    The request's own booking is read with its nights, in the same consistent batch: a retry of a
    request that took the last unit finds its booking before the nights can say "sold out", so
    the answer is a function of the request id (the transaction's hold condition still catches
    a repeat that races the first)."""
    attempts = config.integer("BOOKING_MAX_ATTEMPTS", 3)
    own = booking_key(booking_id_for(request.request_id))
    keys = [own, *(inventory_key(night_pk(request.property_id, request.room_id, d)) for d in request.stay_dates)]
    for attempt in range(attempts):
        items = {item["pk"]: item for item in batch_get({table: keys}, consistent=True)[table]}
        if own["pk"] in items:
            return [], items[own["pk"]]
        nights = nights_to_reserve(request, items)
        now = datetime.now(UTC)
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=transaction(
                request, nights, table, now, config.integer("HOLD_TTL_SECONDS"),
                config.integer("BOOKING_RETENTION_DAYS")))
            return reserved(nights, request.units, now), None
        except ClientError as exc:
            if aws.error_code(exc) != "TransactionCanceledException":
                raise
            outcome = cancellation(exc.response.get("CancellationReasons", []))
            if outcome.duplicate:
                return [], _existing_booking(table, request)
            if not outcome.race:
                raise
            logger.info("booking transaction lost a race", extra={
                "attempt": attempt + 1, "reasons": [r.get("Code", "None") for r in exc.response.get(
                    "CancellationReasons", [])]})
        time.sleep(random.uniform(0.005, 0.02 * (attempt + 1)))  # de-synchronise the racers
    raise LostRace


def _publish(prop: Property, nights: list[Night]) -> None:
    """Tell the property's PMS. A failure is logged, not returned: the booking stands, and
    reconciliation republishes nights the PMS has not acknowledged (SLA 2 min)."""
    entries = [{"Id": str(i), **night.publication(prop.pms_id, "booking")} for i, night in enumerate(nights)]
    try:
        for start in range(0, len(entries), 10):
            failed = aws.client("sns").publish_batch(TopicArn=config.require("INVENTORY_TOPIC_ARN"),
                                                     PublishBatchRequestEntries=entries[start:start + 10]).get("Failed")
            if failed:
                logger.error("inventory update not published", extra={"failed": failed})
    except (ClientError, BotoCoreError):
        logger.exception("inventory update not published", extra={"property_id": prop.property_id})


def book(event: dict[str, Any]) -> dict[str, Any]:
    table = config.require("INVENTORY_TABLE")
    request = parse_booking(event.get("body"), bool(event.get("isBase64Encoded")), datetime.now(UTC).date(),
                            config.integer("MAX_NIGHTS"), config.integer("MAX_UNITS"))
    prop = check_offer(request, read_property(table, request.property_id))
    try:
        nights, earlier = _reserve(table, request)
    except LostRace:
        logger.info("booking lost every race", extra={"request_id": request.request_id})
        return http.response(409, {"error": "the room-night changed while booking; retry", "field": "check_in"})
    if earlier is not None:
        logger.info("repeated request", extra={"request_id": request.request_id, "booking_id": earlier["booking_id"]})
        return http.response(200, _booking_body(earlier))
    _publish(prop, nights)
    booking_id = booking_id_for(request.request_id)
    logger.info("booking confirmed", extra={"booking_id": booking_id, "property_id": request.property_id,
                                            "room_id": request.room_id, "nights": request.nights,
                                            "units": request.units})
    return http.response(201, {"booking_id": booking_id, "status": "confirmed", "property_id": request.property_id,
                               "units": request.units,
                               "nights": [{"stay_date": n.stay_date, "room_id": n.room_id} for n in nights]})


def availability(event: dict[str, Any]) -> dict[str, Any]:
    table = config.require("INVENTORY_TABLE")
    query = parse_availability(event.get("pathParameters"), event.get("queryStringParameters"),
                               datetime.now(UTC).date())
    prop = read_property(table, query.property_id)
    if prop is None:
        raise NotBookable(404, "unknown property", "property_id")
    wanted = {cache.cache_field(room, d): (room, d) for room in sorted(prop.rooms) for d in query.stay_dates}
    units: dict[str, int | None] = {}
    try:
        cached = cache.read_fields(redis_client(), query.property_id, list(wanted))
        units = {field: entry["units"] for field, entry in cached.items() if entry is not None}
    except RedisError:
        logger.warning("cache unavailable; reading the table", extra={"property_id": query.property_id})
    missing = [f for f in wanted if f not in units]
    if missing:
        keys = [inventory_key(night_pk(query.property_id, *wanted[f])) for f in missing]
        for item in batch_get({table: keys})[table]:
            night = Night.from_item(item)
            units[cache.cache_field(night.room_id, night.stay_date)] = night.available_units
    source = "cache" if not missing else ("table" if len(missing) == len(wanted) else "mixed")
    rooms: dict[str, dict[str, int | None]] = {room: {} for room in sorted(prop.rooms)}
    for field, (room, stay_date) in wanted.items():
        rooms[room][stay_date] = units.get(field)
    return http.response(200, {"property_id": query.property_id, "source": source, "rooms": rooms})


ROUTES = {"POST /book": book, "GET /availability/{property_id}": availability}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return http.response(404, {"error": f"no route {event.get('routeKey')!r}"})
    try:
        return route(event)
    except Rejected as rejection:
        logger.info("request rejected", extra={"status": rejection.status, "field": rejection.field})
        return http.response(rejection.status, rejection.body())
    except NotBookable as refusal:
        logger.info("not bookable", extra={"status": refusal.status, "reason": refusal.error})
        return http.response(refusal.status, {"error": refusal.error, "field": refusal.field})
