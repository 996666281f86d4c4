"""DynamoDB Time to Live: the service deletes what has expired, and only that, as the service."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tapharness.sandbox.ttl import FIVE_YEARS_S, due

from .helpers import unique, wait_until

# Functions started and waited on for seconds: handed out first (conftest.py).
pytestmark = pytest.mark.slow

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("expires", "deleted"), [
    (NOW - 10, True),                  # expired longer ago than the delay
    (NOW - 1, False),                  # expired, within the delay
    (NOW + 60, False),                 # not yet
    (NOW - FIVE_YEARS_S - 1, False),   # "more than five years in the past": never deleted
    (None, False),                     # no TTL attribute, or not a Number
])
def test_which_items_ttl_deletes(expires, deleted):
    assert due(expires, NOW, delay_s=2) is deleted


def _ttl_table(aws: Any) -> tuple[str, str]:
    name = unique("expiring")
    stream = aws("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    aws("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                                                  "AttributeName": "expires"})
    return name, stream


def _keys(aws: Any, table: str) -> set[str]:
    return {i["pk"]["S"] for i in aws("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]}


def test_expired_items_are_deleted_and_the_others_kept(aws):
    table, _ = _ttl_table(aws)
    now = int(time.time())
    for key, expires in (("expired", {"N": str(now - 60)}), ("soon", {"N": str(now + 3)}),
                         ("later", {"N": str(now + 3600)}), ("text", {"S": str(now - 60)}),
                         ("ancient", {"N": str(now - FIVE_YEARS_S - 3600)})):
        aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": key}, "expires": expires})
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "forever"}})
    wait_until(lambda: "expired" not in _keys(aws, table), timeout=15, what="the expired item's deletion")
    wait_until(lambda: "soon" not in _keys(aws, table), timeout=15, what="the item expiring in 3 s")
    assert _keys(aws, table) == {"later", "text", "ancient", "forever"}


def test_a_ttl_deletion_is_a_remove_by_the_service_in_the_stream(aws):
    table, stream = _ttl_table(aws)
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "gone"}, "expires": {"N": str(int(time.time()) - 60)}})
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "kept"}})
    aws("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "kept"}})
    streams = aws("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]["ShardId"]

    def records() -> list[dict[str, Any]]:
        iterator = streams.get_shard_iterator(StreamArn=stream, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        found = streams.get_records(ShardIterator=iterator)["Records"]
        return found if len(found) == 4 else []

    removes = {r["dynamodb"]["Keys"]["pk"]["S"]: r.get("userIdentity")
               for r in wait_until(records, timeout=15, what="the TTL deletion's record") if r["eventName"] == "REMOVE"}
    assert removes == {"gone": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}, "kept": None}


def test_an_item_whose_time_was_moved_on_is_kept(aws):
    table, _ = _ttl_table(aws)
    expires = int(time.time()) + 2
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": "renewed"}, "expires": {"N": str(expires)}})
    aws("dynamodb").update_item(TableName=table, Key={"pk": {"S": "renewed"}}, UpdateExpression="SET expires = :e",
                                ExpressionAttributeValues={":e": {"N": str(expires + 3600)}})
    time.sleep(6)
    assert _keys(aws, table) == {"renewed"}
