"""insights_api: per-user and per-page aggregates in the ALB's Lambda response shape."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from .conftest import REGION, TABLE, load_package

ia = load_package("insights_api", "handler")
common = load_package("clickstream_common", "aggregates", "events")


def put(user: str | list[str], page: str, event_type: str, n: int, hours_ago: float = 0) -> None:
    """n events of each user stored and counted as the stream processor's transactions and sketch
    merges do."""
    at = datetime.fromtimestamp(time.time() - hours_ago * 3600, UTC).isoformat()
    events = [common.events.parse_event(json.dumps({
        "event_id": str(uuid.uuid4()), "user_id": u, "session_id": "s", "page": page, "event_type": event_type,
        "occurred_at": at}).encode()) for u in ([user] if isinstance(user, str) else user) for _ in range(n)]
    ddb = boto3.client("dynamodb", region_name=REGION)
    for chunk in common.aggregates.transaction_chunks(events):
        ddb.transact_write_items(TransactItems=common.aggregates.transact_items(TABLE, chunk))
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    for update in common.aggregates.distinct_updates([(str(i), e) for i, e in enumerate(events)]):
        key = common.aggregates.distinct_key(update.pk, update.hour)
        item = table.get_item(Key=key).get("Item")
        sketch = common.aggregates.merged_sketch(bytes(item["sketch"]) if item else None, update.values)
        if sketch is not None:
            table.put_item(Item={**key, "sketch": sketch.dumps(), "version": 1})


def get(path: str, context: Any, multi: bool = False, method: str = "GET",
        query: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    event: dict[str, Any] = {"requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
                             "httpMethod": method, "path": path, "body": "", "isBase64Encoded": False}
    event["multiValueHeaders" if multi else "headers"] = {"host": ["alb"] if multi else "alb"}
    if multi:
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()}
    else:
        event["queryStringParameters"] = query or {}
    response = ia.handler.lambda_handler(event, context)
    return response, json.loads(response["body"])


def test_a_users_insight_counts_events_pages_and_types(aws: Any, context: Any) -> None:
    put("u1", "home", "page_view", 3)
    put("u1", "cart", "click", 2)
    response, body = get("/users/u1", context)
    assert response["statusCode"] == 200 and response["statusDescription"] == "200 OK"
    assert {k: body[k] for k in ("user_id", "events", "pages", "by_type")} == {
        "user_id": "u1", "events": 5, "pages": 2, "by_type": {"click": 2, "page_view": 3}}


def test_a_pages_insight_counts_views_and_unique_users(aws: Any, context: Any) -> None:
    put("u1", "home", "page_view", 2)
    put("u2", "home", "page_view", 1)
    _, body = get("/pages/home", context)
    assert {k: body[k] for k in ("page", "views", "unique_users", "by_type")} == {
        "page": "home", "views": 3, "unique_users": 2, "by_type": {"page_view": 3}}


def test_an_insight_covers_the_last_24_hours_unless_asked_for_more(aws: Any, context: Any) -> None:
    put("u1", "home", "page_view", 1)
    put("u2", "home", "click", 2, hours_ago=30)
    _, day = get("/pages/home", context)
    assert (day["views"], day["unique_users"], day["window"]["hours"]) == (1, 1, 24)
    _, days = get("/pages/home", context, query={"hours": "48"})
    assert (days["views"], days["unique_users"], days["by_type"]) == (3, 2, {"click": 2, "page_view": 1})
    _, multi = get("/pages/home", context, multi=True, query={"hours": "48"})
    assert multi["views"] == 3


@pytest.mark.parametrize("hours", ["0", "169", "-1", "1.5", "day", ""])
def test_a_window_out_of_range_is_a_400_naming_hours(aws: Any, context: Any, hours: str) -> None:
    response, body = get("/pages/home", context, query={"hours": hours})
    assert response["statusCode"] == 400 and body["field"] == "hours"


def test_an_insight_reads_two_items_per_hour_however_busy_the_page(aws: Any, context: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    put([f"u{i}" for i in range(100)], "home", "page_view", 1)  # past the exact sketch: an estimate
    read: list[int] = []
    real = ia.handler.read_units
    monkeypatch.setattr(ia.handler, "read_units", lambda items: read.append(len(items)) or real(items))
    _, body = get("/pages/home", context)
    assert (body["views"], read) == (100, [2])
    assert abs(body["unique_users"] - 100) <= 4 * 0.0325 * 100


def test_read_units_follow_dynamodbs_rounding_to_4_kb_halved_for_eventual_reads() -> None:
    small = {"pk": {"S": "AGG#PAGE#home"}, "sk": {"S": "2026-12-02T10#count"}, "events": {"N": "3"}}
    sketch = {"pk": {"S": "AGG#PAGE#home"}, "sk": {"S": "2026-12-02T10#distinct"}, "sketch": {"B": bytes(1025)}}
    assert ia.handler.read_units([small]) == 0.5
    assert ia.handler.read_units([small, sketch] * 2) == 0.5
    assert ia.handler.read_units([sketch] * 4) == 1.0  # 4 x ~1,065 bytes: two 4 KB units, halved


def test_multi_value_headers_are_answered_in_kind(aws: Any, context: Any) -> None:
    response, _ = get("/health", context, multi=True)
    assert response["multiValueHeaders"] == {"Content-Type": ["application/json"]} and "headers" not in response
    plain, _ = get("/health", context)
    assert plain["headers"] == {"Content-Type": "application/json"}


@pytest.mark.parametrize(("path", "method", "status"), [("/users/bad id", "GET", 400), ("/nowhere", "GET", 404),
                                                        ("/pages/home", "POST", 405)])
def test_bad_requests_get_4xx(aws: Any, context: Any, path: str, method: str, status: int) -> None:
    response, _ = get(path, context, method=method)
    assert response["statusCode"] == status
