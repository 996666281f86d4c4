"""Reads of the inventory table the functions share (contract.md, "Items")."""

from __future__ import annotations

from typing import Any

from tap_common import aws
from tap_common.dynamo import deserialize, serialize

from booking_common.model import (
    ALLOCATION_PREFIX,
    Night,
    Property,
    inventory_key,
    property_key,
)


def read_property(table: str, property_id: str, consistent: bool = False) -> Property | None:
    item = aws.client("dynamodb").get_item(TableName=table, Key=serialize(property_key(property_id)),
                                           ConsistentRead=consistent).get("Item")
    return Property.from_item(deserialize(item)) if item else None


def read_night(table: str, pk: str) -> Night | None:
    """One room-night, strongly consistent (None when it is not on sale)."""
    item = aws.client("dynamodb").get_item(TableName=table, Key=serialize(inventory_key(pk)),
                                           ConsistentRead=True).get("Item")
    return Night.from_item(deserialize(item)) if item else None


def allocations(table: str, pk: str, projection: str | None = None) -> list[dict[str, Any]]:
    """The bookings' allocations of one room-night, strongly consistent (every page)."""
    query: dict[str, Any] = {"TableName": table, "ConsistentRead": True,
                             "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                             "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": ALLOCATION_PREFIX}}}
    if projection:
        query["ProjectionExpression"] = projection
    found: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("query").paginate(**query):
        found += [deserialize(item) for item in page["Items"]]
    return found
