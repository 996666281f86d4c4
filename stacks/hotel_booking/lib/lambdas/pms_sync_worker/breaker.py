"""The circuit breaker of one PMS, as pure state transitions (the state lives in DynamoDB).

closed     calls flow; consecutive failures are counted
open       no calls until open_until; messages wait on their queue meanwhile
half_open  open_until has passed: one probe (the worker holding probe_until) calls the PMS; its
           success closes the breaker, its failure opens it for another period
(circuit.py keeps this state in DynamoDB with atomic updates)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Breaker:
    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0

    def state(self, now: float) -> str:
        if self.open_until > now:
            return "open"
        if self.open_until > 0:
            return "half_open"
        return "closed"

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.open_until - now)

    def after_failure(self, now: float, threshold: int, open_seconds: int) -> Breaker:
        failures = self.failures + 1
        if failures >= threshold or self.state(now) == "half_open":
            return Breaker(failures, now + open_seconds)
        return Breaker(failures, self.open_until)



def backoff_delays(retries: int, base_ms: int, cap_ms: int, draw: float) -> list[float]:
    """Seconds to wait before each retry: exponential with full jitter (`draw` in [0, 1) scales all)."""
    return [min(cap_ms, base_ms * 2**i) * draw / 1000 for i in range(retries)]
