"""Event source mappings delivered with Lambda's semantics, through the public APIs.

``PollerManager`` reads the deployed mappings (``ListEventSourceMappings``) as soon as the gate
serves a change to a mapping or a stream's shards (``tapharness.sandbox.activity``), and at least
every ``settings.reconcile_interval`` seconds, and keeps one poller per Kinesis/DynamoDB-stream
shard and one per SQS queue mapping; a changed mapping's settings apply to the next batch,
a deleted or disabled mapping's pollers stop. moto's own inline delivery is switched off by
``server.detach_inline_delivery`` so that only these pollers deliver.

The pollers are clients of the sandbox's public APIs (``tapharness.sandbox.clients``), not moto
patches, so each event source's poller is here rather than in ``tapharness.sandbox.services``:

- ``base``: ``PollerSettings``, ``MappingConfig``, ``failed_item_ids``, ``POLLER_ERRORS``, the counters;
- ``streams``: ``ShardPoller``, one shard of a stream to one function (batching, filters,
  retries, bisection, on-failure destinations, tumbling windows);
- ``kinesis`` / ``dynamodb``: the stream sources (Kinesis ``GetRecords``, ``dynamodbstreams``);
- ``sqs``: ``QueuePoller``, one queue to one function;
- ``manager``: ``PollerManager``.

Everything is importable from here; the client factory (``AwsClients``, ``Credentials``,
``InvokeOutcome``, ``Invoker``) is ``tapharness.sandbox.clients``.
"""

from __future__ import annotations

from tapharness.sandbox.pollers.base import (
    POLLER_ERRORS,
    MappingConfig,
    PollerSettings,
    PollerStats,
    StreamRecord,
    failed_item_ids,
)
from tapharness.sandbox.pollers.dynamodb import DynamoDBStreamSource
from tapharness.sandbox.pollers.kinesis import KinesisSource
from tapharness.sandbox.pollers.manager import Poller, PollerManager, RoleClients
from tapharness.sandbox.pollers.sqs import QueuePoller, sqs_event_record
from tapharness.sandbox.pollers.streams import ShardPoller, StreamSource

__all__ = [
    "POLLER_ERRORS", "DynamoDBStreamSource", "KinesisSource", "MappingConfig", "Poller", "PollerManager", "PollerSettings", "PollerStats", "QueuePoller",
    "RoleClients", "ShardPoller", "StreamRecord", "StreamSource", "failed_item_ids", "sqs_event_record",
]
