"""Pure mapping of a 'complete' viewing event to a watched-complete PublishBatch entry."""

from __future__ import annotations

import json
from typing import Any

from tap_common.events import ViewingEvent


def completion_ratio(event: ViewingEvent) -> float:
    return round(event.progress, 4)


def publish_entry(entry_id: str, event: ViewingEvent) -> dict[str, Any]:
    """FIFO entry: ordered per user, de-duplicated by event_id; the attributes are what the
    analytics and achievements subscriptions filter on."""
    ratio = completion_ratio(event)
    body = {**event.to_record(), "completion_ratio": ratio}
    return {
        "Id": entry_id,
        "Message": json.dumps(body, separators=(",", ":")),
        "MessageGroupId": event.user_id,
        "MessageDeduplicationId": event.event_id,
        "MessageAttributes": {
            "event_type": {"DataType": "String", "StringValue": "complete"},
            "completion_ratio": {"DataType": "Number", "StringValue": repr(ratio)},
            "content_id": {"DataType": "String", "StringValue": event.content_id},
        },
    }
