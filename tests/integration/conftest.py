"""Fixtures of the post-deploy integration suite, and the per-flow latency summary.

The target comes from ``tapharness.deployed.load_target()`` (``$TAPSTACK_OUTPUTS`` or the
running sandbox of ``$TAPSTACK_ENV``). Without one every test is skipped with a reason that
says how to configure one; a target that is configured but unusable is an error.

Tests call ``latency(flow, started)`` once the outcome of a flow has been observed; the times
travel to the controlling process in the reports' user properties (so they survive
``pytest -n auto`` and land in ``--junitxml``) and are printed at the end of the session.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest
import redis

from tapharness.deployed import Target

from .flows import Api, Inbox

LATENCY_PROPERTY = "latency:"
CONNECT_ERRORS = (OSError, pg8000.exceptions.InterfaceError, redis.exceptions.ConnectionError)


class LatencyReport:
    """Collects ``latency:<flow>`` user properties of passed tests and prints them per flow."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or not report.passed:
            return
        for name, value in report.user_properties:
            if name.startswith(LATENCY_PROPERTY):
                self.samples[name[len(LATENCY_PROPERTY):]].append(float(value))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.samples:
            return
        terminalreporter.section("per-flow latency: request to observed outcome (seconds)")
        width = max(len(flow) for flow in self.samples)
        terminalreporter.write_line(f"{'flow':<{width}}  {'n':>3}  {'min':>7}  {'median':>7}  {'max':>7}")
        for flow, values in sorted(self.samples.items()):
            terminalreporter.write_line(f"{flow:<{width}}  {len(values):>3}  {min(values):>7.2f}  "
                                        f"{statistics.median(values):>7.2f}  {max(values):>7.2f}")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("tapstack-latency"):
        config.pluginmanager.register(LatencyReport(), "tapstack-latency")



@pytest.fixture(scope="session")
def api(target: Target) -> Api:
    return Api(target)


@pytest.fixture
def latency(record_property: Callable[[str, object], None]) -> Callable[..., float]:
    """latency(flow, started, ended=now) records ended - started (time.monotonic() values) for the flow."""

    def record(flow: str, started: float, ended: float | None = None) -> float:
        seconds = (time.monotonic() if ended is None else ended) - started
        record_property(f"{LATENCY_PROPERTY}{flow}", round(seconds, 3))
        return seconds

    return record


def _unreachable(target: Target, what: str, address: object, variable: str, error: Exception) -> None:
    if target.is_sandbox:
        pytest.fail(f"the sandbox's {what} at {address} refused the connection: {error}", pytrace=False)
    pytest.skip(f"{what} at {address} is not reachable from this machine ({error}); it lives in the stack's "
                f"private subnets: open a tunnel (e.g. SSM port forwarding) and set {variable}=host:port")


@pytest.fixture(scope="session")
def aurora(target: Target) -> Iterator[pg8000.native.Connection]:
    """A connection to the stack's Aurora database (the sandbox's PostgreSQL), autocommit."""
    try:
        connection = target.connect_db()
    except CONNECT_ERRORS as error:
        _unreachable(target, "Aurora", target.db_address(), "TAPSTACK_DB_ADDRESS", error)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def cache(target: Target) -> Iterator[redis.Redis]:
    """A client of the stack's Redis (the sandbox's TLS Redis), with the auth token of its secret."""
    client = target.connect_redis()
    try:
        client.ping()
    except CONNECT_ERRORS as error:
        _unreachable(target, "Redis", target.redis_address(), "TAPSTACK_REDIS_ADDRESS", error)
    yield client
    client.close()


@pytest.fixture
def notifications(target: Target) -> Iterator[Inbox]:
    """A test-owned queue subscribed to user-notifications for the duration of the test."""
    inbox = Inbox(target, target.output("sns_topic_arns", "notifications"))
    yield inbox
    inbox.close()
