"""SQS: the sandbox's changes to moto's (RedriveAllowPolicy, a SetQueueAttributes that kept
wiping the queue policy, and a ReceiveMessage that cost the square of the queue's depth).
Event source mappings on queues are delivered by ``tapharness.sandbox.pollers.sqs``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from moto.core.utils import camelcase_to_underscores
from moto.sqs.models import Message, Queue, SQSBackend

from tapharness.sandbox import clock
from tapharness.sandbox.patches import patch

# --- moto behaviour fixes (model patches) ---------------------------------------------

_QUEUE_ATTRIBUTES = Queue.attributes
_QUEUE_SET_ATTRIBUTES = Queue._set_attributes
_GET_QUEUE_ATTRIBUTES = SQSBackend.get_queue_attributes


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """Queue attributes with RedriveAllowPolicy, and RedrivePolicy as compact JSON (as AWS returns it)."""
    result = _attributes_without_counts(self) if getattr(_SENDING, "queue", None) is self else _QUEUE_ATTRIBUTES.fget(self)
    if isinstance(result.get("RedrivePolicy"), str):
        result["RedrivePolicy"] = json.dumps(json.loads(result["RedrivePolicy"]), separators=(",", ":"))
    if self.__dict__.get("redrive_allow_policy"):
        result["RedriveAllowPolicy"] = self.redrive_allow_policy
    return result


patch.replace(Queue, "attributes", property(_queue_attributes))


@patch(Queue, "_set_attributes")
def _queue_set_attributes(self: Queue, attributes: dict[str, Any], now: float | None = None) -> None:
    """moto resets Policy on every SetQueueAttributes; keep it unless the call sets it."""
    policy = self.__dict__.get("_policy_json")
    _QUEUE_SET_ATTRIBUTES(self, attributes, now)
    if "Policy" not in attributes and policy is not None:
        self._policy_json = policy


@patch(SQSBackend, "get_queue_attributes")
def _get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    """GetQueueAttributes that also knows RedriveAllowPolicy (which moto stores but never returns)."""
    others = [name for name in attribute_names if name != "RedriveAllowPolicy"]
    result = _GET_QUEUE_ATTRIBUTES(self, queue_name, others) if others else {}
    if "RedriveAllowPolicy" in attribute_names or "All" in attribute_names:
        allow = self.get_queue(queue_name).__dict__.get("redrive_allow_policy")
        if allow:
            result["RedriveAllowPolicy"] = allow
    return result


# --- Speed: what a profile of the sandbox under load showed ----------------------------

# SendMessage: moto reads queue.attributes up to three times per message for ContentBasedDeduplication
# alone, and those attributes count every message of the queue (visible, delayed, in flight), so a
# send cost the queue's depth: 19 % of the server's Python time in the video load benchmark. While a
# send runs, the queue's attributes leave out the three counts, which it never reads.
_COUNTS = frozenset({"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                     "ApproximateNumberOfMessagesNotVisible"})
_SENDING = threading.local()
_SEND_MESSAGE = SQSBackend.send_message


def _attributes_without_counts(queue: Queue) -> dict[str, Any]:
    names = [name for name in Queue.BASE_ATTRIBUTES if name not in _COUNTS]
    names += Queue.FIFO_ATTRIBUTES if queue.fifo_queue else []
    names += Queue.KMS_ATTRIBUTES if queue.kms_master_key_id else []  # type: ignore[attr-defined]
    result = {name: getattr(queue, camelcase_to_underscores(name)) for name in names}
    if queue.policy:
        result["Policy"] = queue.policy
    if queue.redrive_policy:
        result["RedrivePolicy"] = json.dumps(queue.redrive_policy)
    return {key: str(value).lower() if isinstance(value, bool) else value for key, value in result.items()}


@patch(SQSBackend, "send_message")
def _send_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Message:
    _SENDING.queue = self.get_queue(queue_name)
    try:
        return _SEND_MESSAGE(self, queue_name, *args, **kwargs)
    finally:
        _SENDING.queue = None


# SQS ReceiveMessage: for each message moto builds every attribute of the queue (counting its
# messages) to read the retention period, so a receive costs the square of the queue's depth.
@patch(SQSBackend, "is_message_valid_based_on_retention_period")
def _within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    period = int(self.queues[queue_name].message_retention_period)
    sent = message.__dict__.get("sent_on_clock", message.sent_timestamp / 1000)
    return period + sent > clock.now()


_MARK_SENT = Message.mark_sent


@patch(Message, "mark_sent")
def _mark_sent(self: Message, delay_seconds: int | None = None) -> None:
    """Sent on the sandbox's clock too (its retention is judged on that clock), so a message sent
    after the clock moved on is as young as any."""
    _MARK_SENT(self, delay_seconds)
    self.sent_on_clock = clock.now()
