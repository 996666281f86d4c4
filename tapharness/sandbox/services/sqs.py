"""SQS: the sandbox's changes to moto's (RedriveAllowPolicy, a SetQueueAttributes that kept
wiping the queue policy, and a ReceiveMessage that cost the square of the queue's depth).
Event source mappings on queues are delivered by ``tapharness.sandbox.pollers.sqs``.
"""

from __future__ import annotations

import json
from typing import Any

from moto.sqs.models import Message, Queue, SQSBackend

from tapharness.sandbox import clock
from tapharness.sandbox.patches import patch

# --- moto behaviour fixes (model patches) ---------------------------------------------

_QUEUE_ATTRIBUTES = Queue.attributes
_QUEUE_SET_ATTRIBUTES = Queue._set_attributes
_GET_QUEUE_ATTRIBUTES = SQSBackend.get_queue_attributes


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """Queue attributes with RedriveAllowPolicy, and RedrivePolicy as compact JSON (as AWS returns it)."""
    result = _QUEUE_ATTRIBUTES.fget(self)
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
