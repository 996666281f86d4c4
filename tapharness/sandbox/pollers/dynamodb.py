"""DynamoDB Streams as an event source: a stream's shards and records, for ``ShardPoller``
(``pollers.streams``). What the sandbox changes in moto's DynamoDB is ``services.dynamodb``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tapharness.sandbox import activity
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.pollers.base import StreamRecord


class DynamoDBStreamSource:
    """DynamoDB Streams, read with the dynamodbstreams API."""

    batch_info_key = "DDBStreamBatchInfo"
    # An idle shard is read again at Lambda's base rate (docs.aws.amazon.com/lambda/latest/dg/with-ddb.html:
    # "polls shards ... at a base rate of 4 times per second"), or at once when a write to a table is served.
    idle_interval = 0.25
    read_limit = 1000  # records asked for per read
    writes = activity.WRITES["dynamodb"]

    def __init__(self, clients: AwsClients, stream_arn: str) -> None:
        self.clients = clients
        self.stream_arn = stream_arn

    def shard_ids(self) -> list[str]:
        description = self.clients.client("dynamodbstreams").describe_stream(StreamArn=self.stream_arn)
        return [s["ShardId"] for s in description["StreamDescription"]["Shards"]]

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return self.clients.client("dynamodbstreams").get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, iterator: str, shard_id: str, role: str) -> tuple[list[StreamRecord], str]:
        response = self.clients.client("dynamodbstreams").get_records(ShardIterator=iterator, Limit=self.read_limit)
        records = []
        for raw in response["Records"]:
            dynamodb = dict(raw["dynamodb"])
            created = dynamodb.get("ApproximateCreationDateTime")
            arrival = created.timestamp() if isinstance(created, datetime) else time.time()
            dynamodb["ApproximateCreationDateTime"] = int(arrival)
            event = {
                "eventID": raw["eventID"], "eventName": raw["eventName"], "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": self.clients.region,
                "dynamodb": dynamodb, "eventSourceARN": self.stream_arn,
            }
            identity = raw.get("userIdentity")
            if identity:  # a TTL deletion: Lambda's event spells the Identity's members in camel case
                event["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
            records.append(StreamRecord(event, dynamodb["SequenceNumber"], arrival, event))
        return records, response["NextShardIterator"]
