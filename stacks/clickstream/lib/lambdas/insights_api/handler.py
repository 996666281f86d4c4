"""Internal ALB -> insights_api: a page's or a user's activity over the last hours.

GET /users/{user_id}[?hours=N] -> {user_id, events, pages, by_type, window}
GET /pages/{page}[?hours=N]    -> {page, views, unique_users, by_type, window}
GET /health                    -> {status: ok} (the target group's health check)
N is 1-168 (default 24). The answer sums the hourly aggregates the stream processor keeps
(clickstream_common.aggregates): at most 2N items per request, whatever the traffic, so the
cost of an insight is bounded; its read units are logged with every answer. Distinct counts are
exact up to 64 and estimated beyond (HyperLogLog, 3.25 % standard error). Answers in the ALB's
Lambda response shape, with multiValueHeaders when the target group sends them.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from clickstream_common import aggregates
from clickstream_common.events import IDENTIFIER
from tap_common import aws, config
from tap_common.dynamo import deserialize
from tap_common.logs import logger as make_logger

logger = make_logger()

DEFAULT_HOURS, MAX_HOURS = 24, 168
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def respond(status: int, body: dict[str, Any], multi_value: bool) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    response: dict[str, Any] = {"statusCode": status, "statusDescription": f"{status} {REASONS.get(status, '')}".strip(),
                                "isBase64Encoded": False, "body": json.dumps(body)}
    if multi_value:
        response["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    else:
        response["headers"] = headers
    return response


def read_units(items: list[dict[str, Any]]) -> float:
    """What a Query returning `items` costs, eventually consistent: their summed size rounded up to
    4 KB, halved ("Read consumption for Query", DynamoDB developer guide). Sizes follow the guide's
    rules: name bytes plus value bytes (strings UTF-8, numbers ~1 byte per 2 digits + 1, binary raw)."""
    size = sum(_size(name) + _value_size(value) for item in items for name, value in item.items())
    return max(1, math.ceil(size / 4096)) * 0.5


def _size(text: str) -> int:
    return len(text.encode())


def _value_size(value: dict[str, Any]) -> int:
    kind, body = next(iter(value.items()))
    if kind == "S":
        return _size(body)
    if kind == "N":
        return (len(body.strip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(body)
    if kind == "M":
        return 3 + sum(_size(k) + _value_size(v) + 1 for k, v in body.items())
    return 1


def hour_window(hours: int, now: float) -> tuple[str, str]:
    """The first and last hour ("YYYY-MM-DDTHH", UTC) of the `hours` ending with the current one."""
    def hour(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H")
    return hour(now - (hours - 1) * 3600), hour(now)


def insight(pk: str, hours: int, now: float) -> tuple[aggregates.Insight, dict[str, Any]]:
    first, last = hour_window(hours, now)
    paginator = aws.client("dynamodb").get_paginator("query")
    found: list[dict[str, Any]] = []
    for page in paginator.paginate(TableName=config.require("BEHAVIOUR_TABLE"),
                                   KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                                   ExpressionAttributeValues={":pk": {"S": pk}, ":first": {"S": first},
                                                              ":last": {"S": f"{last}#~"}}):
        found += page["Items"]
    total = aggregates.Insight()
    for item in found:
        total.add(deserialize(item))
    logger.info("insight served", extra={"pk": pk, "hours": hours, "items": len(found), "read_units": read_units(found)})
    return total, {"from": f"{first}:00:00Z", "to": f"{last}:59:59Z", "hours": hours}


def _hours(event: dict[str, Any]) -> int | None:
    single = event.get("queryStringParameters") or {}
    multi = event.get("multiValueQueryStringParameters") or {}
    raw = multi["hours"][-1] if multi.get("hours") else single.get("hours")
    if raw is None:
        return DEFAULT_HOURS
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_HOURS else None


def route(method: str, path: str, hours: int | None, now: float) -> tuple[int, dict[str, Any]]:
    parts = [p for p in path.split("/") if p]
    if parts == ["health"]:
        return 200, {"status": "ok"}
    if len(parts) != 2 or parts[0] not in ("users", "pages"):
        return 404, {"error": "no such insight"}
    if method != "GET":
        return 405, {"error": "only GET"}
    if not IDENTIFIER.match(parts[1]):
        return 400, {"error": "must be 1-128 letters, digits, '_', '.' or '-'", "field": parts[0][:-1]}
    if hours is None:
        return 400, {"error": f"must be a whole number of hours from 1 to {MAX_HOURS}", "field": "hours"}
    if parts[0] == "users":
        total, window = insight(aggregates.user_aggregate(parts[1]), hours, now)
        return 200, {"user_id": parts[1], "events": total.events, "pages": total.distinct.count(),
                     "by_type": dict(sorted(total.by_type.items())), "window": window}
    total, window = insight(aggregates.page_aggregate(parts[1]), hours, now)
    return 200, {"page": parts[1], "views": total.events, "unique_users": total.distinct.count(),
                 "by_type": dict(sorted(total.by_type.items())), "window": window}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    status, body = route(event.get("httpMethod", ""), event.get("path", ""), _hours(event), time.time())
    return respond(status, body, "multiValueHeaders" in event)
