"""What the sandbox served that its background threads wait for.

A stream poller with nothing to read waits for the next write to its kind of source (or its idle
interval, AWS's base polling rate), and the poller manager for the next change to an event source
mapping or a stream's shards (or its reconcile interval), instead of asking moto again every few
milliseconds: idle polling was most of an idle sandbox's CPU. The IAM gate reports every call it
served (``served``); writes the sandbox makes in its own process (TTL deletions, global-table
replication) are seen at the next idle poll, as AWS's pollers see them at their base rate.
"""

from __future__ import annotations

import threading

_READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "TransactGet", "SubscribeToShard")
# Calls that change which shards or mappings exist: the poller manager reconciles at once.
_RESHAPES = frozenset({"CreateStream", "DeleteStream", "UpdateShardCount", "SplitShard", "MergeShards",
                       "CreateTable", "UpdateTable", "DeleteTable"})


class Signal:
    """A counter of events and a condition to wait for the next one without missing any: read
    ``generation`` before looking, then ``wait(generation, ...)`` returns at once if one came since."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Until an event after ``seen`` (or ``timeout`` seconds): the generation now."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen, timeout)
            return self._generation


WRITES = {"kinesis": Signal(), "dynamodb": Signal()}  # a record may have reached a stream of this kind
MAPPINGS = Signal()  # a mapping, a stream or a table's stream settings changed


def served(signer: str, method: str, path: str, target: str) -> None:
    """The gate answered a call (``target``: the X-Amz-Target of the JSON protocols)."""
    if signer == "lambda":
        if method != "GET" and ("event-source-mappings" in path or method == "DELETE"):
            MAPPINGS.notify()
        return
    signal = WRITES.get(signer)
    if signal is None:
        return
    operation = target.rpartition(".")[2]
    if operation.startswith(_READS):
        return
    signal.notify()
    if operation in _RESHAPES:
        MAPPINGS.notify()
