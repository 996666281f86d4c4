"""Internal ALB -> insights_api: aggregates of the processed clickstream.

GET /users/{user_id}  -> {user_id, events, pages, by_type}
GET /pages/{page}     -> {page, views, unique_users, by_type}
GET /health           -> {status: ok} (the target group's health check)
Answers in the ALB's Lambda response shape, with multiValueHeaders when the target group
sends them (lambda_multi_value_headers_enabled).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from clickstream_common.events import IDENTIFIER, page_key, user_key
from tap_common import aws, config
from tap_common.logs import logger as make_logger

logger = make_logger()

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


def summarize(items: list[dict[str, Any]], by: str) -> dict[str, Any]:
    """Counts over one user's or one page's events: total, distinct `by` values, per event type."""
    return {"count": len(items), "distinct": len({i[by] for i in items}),
            "by_type": dict(sorted(Counter(i["event_type"] for i in items).items()))}


def _events(pk: str) -> list[dict[str, Any]]:
    paginator = aws.client("dynamodb").get_paginator("query")
    found = []
    for page in paginator.paginate(TableName=config.require("BEHAVIOUR_TABLE"), KeyConditionExpression="pk = :pk",
                                   ExpressionAttributeValues={":pk": {"S": pk}},
                                   ProjectionExpression="event_type, page, user_id"):
        found += [{k: v["S"] for k, v in item.items()} for item in page["Items"]]
    return found


def route(method: str, path: str) -> tuple[int, dict[str, Any]]:
    parts = [p for p in path.split("/") if p]
    if parts == ["health"]:
        return 200, {"status": "ok"}
    if len(parts) != 2 or parts[0] not in ("users", "pages"):
        return 404, {"error": "no such insight"}
    if method != "GET":
        return 405, {"error": "only GET"}
    if not IDENTIFIER.match(parts[1]):
        return 400, {"error": "must be 1-128 letters, digits, '_', '.' or '-'", "field": parts[0][:-1]}
    if parts[0] == "users":
        summary = summarize(_events(user_key(parts[1])), "page")
        return 200, {"user_id": parts[1], "events": summary["count"], "pages": summary["distinct"],
                     "by_type": summary["by_type"]}
    summary = summarize(_events(page_key(parts[1])), "user_id")
    return 200, {"page": parts[1], "views": summary["count"], "unique_users": summary["distinct"],
                 "by_type": summary["by_type"]}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    status, body = route(event.get("httpMethod", ""), event.get("path", ""))
    return respond(status, body, "multiValueHeaders" in event)
