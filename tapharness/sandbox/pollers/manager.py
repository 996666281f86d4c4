"""``PollerManager``: keeps one poller per Kinesis/DynamoDB-stream shard and one per SQS queue
mapping in step with the deployed event source mappings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tapharness.sandbox import activity
from tapharness.sandbox.clients import AwsClients, Invoker
from tapharness.sandbox.pollers.base import (
    POLLER_ERRORS,
    MappingConfig,
    PollerSettings,
    log,
)
from tapharness.sandbox.pollers.dynamodb import DynamoDBStreamSource
from tapharness.sandbox.pollers.kinesis import KinesisSource
from tapharness.sandbox.pollers.sqs import QueuePoller
from tapharness.sandbox.pollers.streams import ShardPoller, StreamSource

Poller = ShardPoller | QueuePoller


# (execution role ARN, function name) -> the clients of that role's session
RoleClients = Callable[[str, str], AwsClients]


class PollerManager(threading.Thread):
    """Keeps the pollers in step with the deployed event source mappings.

    As in Lambda, a mapping reads its source and sends to its on-failure destination with the
    function's execution role (``as_role``), while the invocation itself is the service's
    (``invoker``, the Invoke API as administrator unless given).
    """

    def __init__(self, clients: AwsClients, settings: PollerSettings | None = None,
                 as_role: RoleClients | None = None, invoker: Invoker | None = None) -> None:
        super().__init__(name="poller-manager", daemon=True)
        self.clients = clients
        self.invoker: Invoker = invoker or clients
        self.as_role = as_role
        self.settings = settings or PollerSettings()
        self.pollers: dict[tuple[str, str], Poller] = {}
        # Stopped with their mapping, until their thread ends (a receive may still be in flight).
        self.stopping: dict[tuple[str, str], Poller] = {}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._roles: dict[str, str] = {}

    def stop(self) -> None:
        self._stop_event.set()
        activity.MAPPINGS.notify()
        with self._lock:
            pollers = [*self.pollers.values(), *self.stopping.values()]
            self.pollers.clear()
            self.stopping.clear()
        for poller in pollers:
            poller.stop()
        for poller in pollers:
            poller.join(timeout=10)

    def _mappings(self) -> list[MappingConfig]:
        paginator = self.clients.client("lambda").get_paginator("list_event_source_mappings")
        return [MappingConfig.from_api(esm) for page in paginator.paginate() for esm in page["EventSourceMappings"]]

    def _role(self, function_arn: str) -> str:
        if function_arn not in self._roles:
            config = self.clients.client("lambda").get_function_configuration(FunctionName=function_arn)
            self._roles[function_arn] = config["Role"]
        return self._roles[function_arn]

    def _role_clients(self, function_arn: str) -> AwsClients:
        if self.as_role is None:
            return self.clients
        return self.as_role(self._role(function_arn), function_arn.split(":")[6])

    def _start(self, key: tuple[str, str], poller: Poller) -> None:
        self.pollers[key] = poller
        poller.start()

    def reconcile(self) -> None:
        """One pass: start pollers for new mappings/shards, update settings, stop removed ones.

        A mapping whose source cannot be read (its role may not list the shards) keeps the pollers
        it has and is tried again next pass; it never holds up the other mappings."""
        wanted: set[tuple[str, str]] = set()
        for config in self._mappings():
            if not config.enabled or config.source_kind not in ("sqs", "kinesis", "dynamodb"):
                continue
            try:
                wanted.update(self._reconcile_mapping(config))
            except POLLER_ERRORS as exc:
                log.warning("event source mapping %s: reading %s failed: %s", config.uuid, config.source_arn, exc)
                with self._lock:
                    wanted.update(key for key in self.pollers if key[0] == config.uuid)
        with self._lock:
            gone = [key for key in self.pollers if key not in wanted]
            for key in gone:
                self.stopping[key] = self.pollers.pop(key)
                self.stopping[key].stop()
            self.stopping = {key: p for key, p in self.stopping.items() if p.is_alive()}

    def _reconcile_mapping(self, config: MappingConfig) -> list[tuple[str, str]]:
        """Start the pollers one mapping lacks and give them its current settings: their keys."""
        as_role = self._role_clients(config.function_arn)
        if config.source_kind == "sqs":
            keys: list[tuple[str, str]] = [(config.uuid, "queue")]
            with self._lock:
                if keys[0] not in self.pollers:
                    self._start(keys[0], QueuePoller(config, as_role, self.settings, self.invoker))
        else:
            source: StreamSource = (KinesisSource(as_role, config.source_arn) if config.source_kind == "kinesis"
                                    else DynamoDBStreamSource(as_role, config.source_arn))
            keys = [(config.uuid, shard) for shard in source.shard_ids()]
            role = self._role(config.function_arn)
            with self._lock:
                for key in keys:
                    if key not in self.pollers:
                        self._start(key, ShardPoller(config, source, key[1], as_role, self.settings, role,
                                                     self.invoker))
        with self._lock:
            for key in keys:
                self.pollers[key].config = config
        return keys

    def snapshot(self) -> list[dict[str, Any]]:
        """Per poller: mapping, source, shard, state (running, or stopping until its thread ends) and counters."""
        with self._lock:
            running = [(key, p, "running") for key, p in sorted(self.pollers.items())]
            stopping = [(key, p, "stopping") for key, p in sorted(self.stopping.items()) if p.is_alive()]
            return [
                {"uuid": uuid_, "shard": shard, "state": state, "function": p.config.function_arn,
                 "source": p.config.source_arn, **p.stats.snapshot()}
                for (uuid_, shard), p, state in running + stopping
            ]

    def run(self) -> None:
        while not self._stop_event.is_set():
            changes = activity.MAPPINGS.generation
            try:
                self.reconcile()
            except POLLER_ERRORS as exc:  # the sandbox keeps running while moto is briefly unavailable
                log.warning("reconciling event source mappings failed: %s", exc)
            # At once after a mapping or a stream's shards change (the gate says so); the interval
            # catches what changed another way.
            activity.MAPPINGS.wait(changes, self.settings.reconcile_interval)
