"""insights_api: per-user and per-page aggregates in the ALB's Lambda response shape."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from .conftest import REGION, TABLE, load_package

ia = load_package("insights_api", "handler")


def put(user: str, page: str, event_type: str, n: int) -> None:
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    for i in range(n):
        attrs = {"event_type": event_type, "page": page, "user_id": user, "event_id": f"{user}-{page}-{i}"}
        table.put_item(Item={"pk": f"USER#{user}", "sk": f"2026-12-02T10:00:0{i}Z#{user}{page}{i}", **attrs})
        table.put_item(Item={"pk": f"PAGE#{page}", "sk": f"2026-12-02T10:00:0{i}Z#{user}{page}{i}", **attrs})


def get(path: str, context: Any, multi: bool = False, method: str = "GET") -> tuple[dict[str, Any], Any]:
    event: dict[str, Any] = {"requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:tg"}},
                             "httpMethod": method, "path": path, "body": "", "isBase64Encoded": False}
    event["multiValueHeaders" if multi else "headers"] = {"host": ["alb"] if multi else "alb"}
    response = ia.handler.lambda_handler(event, context)
    return response, json.loads(response["body"])


def test_a_users_insight_counts_events_pages_and_types(aws: Any, context: Any) -> None:
    put("u1", "home", "page_view", 3)
    put("u1", "cart", "click", 2)
    response, body = get("/users/u1", context)
    assert response["statusCode"] == 200 and response["statusDescription"] == "200 OK"
    assert body == {"user_id": "u1", "events": 5, "pages": 2, "by_type": {"click": 2, "page_view": 3}}


def test_a_pages_insight_counts_views_and_unique_users(aws: Any, context: Any) -> None:
    put("u1", "home", "page_view", 2)
    put("u2", "home", "page_view", 1)
    _, body = get("/pages/home", context)
    assert body == {"page": "home", "views": 3, "unique_users": 2, "by_type": {"page_view": 3}}


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
