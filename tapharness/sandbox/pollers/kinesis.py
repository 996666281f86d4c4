"""Kinesis Data Streams as an event source: a stream's shards and records, for ``ShardPoller``
(``pollers.streams``). What the sandbox changes in moto's Kinesis is ``services.kinesis``."""

from __future__ import annotations

import base64
from typing import Any

from tapharness.sandbox import activity
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.filters import decode_json
from tapharness.sandbox.pollers.base import StreamRecord


class KinesisSource:
    """Kinesis Data Streams, read with GetShardIterator/GetRecords."""

    batch_info_key = "KinesisBatchInfo"
    # An idle shard is read again at Lambda's base rate (docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html:
    # "polls each shard ... at a base rate of once per second"), or at once when a write to a stream is served.
    idle_interval = 1.0
    read_limit = 1000  # records asked for per read
    writes = activity.WRITES["kinesis"]

    def __init__(self, clients: AwsClients, stream_arn: str) -> None:
        self.clients = clients
        self.stream_arn = stream_arn

    def shard_ids(self) -> list[str]:
        shards = self.clients.client("kinesis").list_shards(StreamARN=self.stream_arn)["Shards"]
        return [s["ShardId"] for s in shards]

    def iterator(self, shard_id: str, position: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamARN": self.stream_arn, "ShardId": shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = position
        return self.clients.client("kinesis").get_shard_iterator(**kwargs)["ShardIterator"]

    def read(self, iterator: str, shard_id: str, role: str) -> tuple[list[StreamRecord], str]:
        response = self.clients.client("kinesis").get_records(ShardIterator=iterator, Limit=self.read_limit,
                                                               StreamARN=self.stream_arn)
        records = []
        for raw in response["Records"]:
            arrival = raw["ApproximateArrivalTimestamp"].timestamp()
            kinesis = {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": raw["SequenceNumber"],
                "data": base64.b64encode(raw["Data"]).decode(),
                "approximateArrivalTimestamp": round(arrival, 3),
            }
            event = {
                "kinesis": kinesis, "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"{shard_id}:{raw['SequenceNumber']}", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role, "awsRegion": self.clients.region, "eventSourceARN": self.stream_arn,
            }
            view = {**kinesis, "data": decode_json(raw["Data"])}
            records.append(StreamRecord(event, raw["SequenceNumber"], arrival, view))
        return records, response["NextShardIterator"]
