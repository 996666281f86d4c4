"""Named, bounded waits for asynchronous outcomes (terratest-style retries, built on tenacity).

``wait_for("the SUMMARY item of user u-1 to show progress 0.5", probe, timeout=60)`` calls
``probe`` until it returns a value that ``ready`` accepts (by default: a truthy one), backing
off from ``interval`` up to ``max_interval`` between attempts. When ``timeout`` runs out it
raises ``WaitTimeout`` naming what was awaited, how long and how often it was probed, and what
the probe last returned (or the exception it last raised, for the types in ``retry_on``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Future,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_exponential,
)

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A named wait ran out of time; the message says what was awaited and what was last seen."""

    def __init__(self, description: str, timeout: float, attempts: int, last_seen: str) -> None:
        super().__init__(f"timed out after {timeout:.0f}s ({attempts} probes) waiting for {description}; "
                         f"last seen: {last_seen}")
        self.description = description
        self.last_seen = last_seen


def _describe(outcome: Future) -> str:
    if outcome.failed:
        error = outcome.exception()
        return f"{type(error).__name__}: {error}"
    return repr(outcome.result())


def wait_for(description: str, probe: Callable[[], T], timeout: float, *,
             ready: Callable[[T], bool] = bool, interval: float = 0.2, max_interval: float = 2.0,
             retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """Probe until ``ready(probe())`` holds and return that value; ``WaitTimeout`` after ``timeout`` s.

    Exceptions of the types in ``retry_on`` count as "not yet" (and are reported as last seen);
    any other exception propagates at once.
    """
    started = time.monotonic()
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=interval, min=interval, max=max_interval),
        retry=retry_if_result(lambda value: not ready(value)) | retry_if_exception_type(retry_on),
        reraise=False,
    )
    try:
        return retrying(probe)
    except RetryError as error:
        last = error.last_attempt
        raise WaitTimeout(description, time.monotonic() - started, last.attempt_number, _describe(last)) from None
