"""The sandbox's clock: the time its services judge ages by, which a test may move forward.

``POST /_sandbox/clock {"advance_s": 61}`` moves it on (never back: AWS's time is monotonic);
``GET /_sandbox/clock`` tells the offset. What reads it: SQS message retention and the age of the
oldest message, DynamoDB Time to Live (``ttl``), Kinesis records' arrival with the mappings'
record ages and tumbling windows, the metrics the services publish and the alarms' evaluation.
Everything else (moto's other timestamps, schedules, Step Functions runs, Lambda timeouts) keeps
the machine's time.
"""

from __future__ import annotations

import datetime
import math
import threading
import time

_lock = threading.Lock()
_offset_s = 0.0


def now() -> float:
    """Seconds since the epoch on the sandbox's clock."""
    return time.time() + _offset_s


def utc() -> datetime.datetime:
    """The sandbox's time as moto keeps it: a naive UTC datetime."""
    return datetime.datetime.fromtimestamp(now(), datetime.UTC).replace(tzinfo=None)


def advance(seconds: float) -> float:
    """Move the clock ``seconds`` forward; returns the new offset."""
    global _offset_s
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"the clock only moves forward, by a finite number of seconds, not {seconds!r}")
    with _lock:
        _offset_s += seconds
        return _offset_s


def status() -> dict[str, float]:
    return {"offset_s": _offset_s, "now": now()}
