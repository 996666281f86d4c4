"""Flow 5: the content-expiration state machine (FindExpired on Aurora, then in parallel
MarkExpired on content_catalog, PurgeCache on Redis, ArchiveViews as an Athena CTAS), started
directly with a named execution and through its EventBridge schedule.

Each run gets its own expired content: a content_licenses row with an expiry in the past, a
catalog item, and Redis entries (``content:<id>``, ``cf:<id>``, the id inside another
content's ``cf:`` set and inside a user's ``recs:`` set).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest
import redis

from tapharness.deployed import Target
from tapharness.retry import wait_for

from .flows import HOP_TIMEOUT_S, delete_item, get_item, new_id, put_item

pytestmark = pytest.mark.integration

LICENSES_DDL = """CREATE TABLE IF NOT EXISTS content_licenses (
    content_id text PRIMARY KEY,
    title text,
    license_expiry_date date)"""
# expiration_find creates the table under this advisory lock (tap_common.db.ensure_schema).
LICENSES_LOCK = zlib.crc32(b"licenses")
EXECUTION_TIMEOUT_S = 3 * HOP_TIMEOUT_S
BRANCHES = {"MarkExpired", "PurgeCache", "ArchiveViews"}


@dataclass(frozen=True)
class ExpiredContent:
    content_id: str
    kept_id: str
    user_id: str

    @property
    def keys(self) -> dict[str, str]:
        return {"content": f"content:{self.content_id}", "own_cf": f"cf:{self.content_id}",
                "kept_cf": f"cf:{self.kept_id}", "recs": f"recs:{self.user_id}"}


@dataclass(frozen=True)
class Run:
    seeded: ExpiredContent
    execution: dict[str, Any]
    started: float
    ended: float

    @property
    def branch_outputs(self) -> list[dict[str, Any]]:
        return json.loads(self.execution["output"])


def seed(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis) -> ExpiredContent:
    content = ExpiredContent(new_id("expired"), new_id("kept"), new_id("user"))
    aurora.run("BEGIN")
    try:
        aurora.run("SELECT pg_advisory_xact_lock(:id)", id=LICENSES_LOCK)
        aurora.run(LICENSES_DDL)
    except pg8000.exceptions.DatabaseError:
        aurora.run("ROLLBACK")
        raise
    aurora.run("COMMIT")
    aurora.run("INSERT INTO content_licenses (content_id, title, license_expiry_date) VALUES (:c, :t, :d)",
               c=content.content_id, t="integration test title", d=datetime.now(UTC).date() - timedelta(days=2))
    put_item(target, "catalog", {"content_id": content.content_id, "title": "integration test title",
                                 "genre": "test", "expired": False})
    keys = content.keys
    pipe = cache.pipeline(transaction=False)
    pipe.hset(keys["content"], mapping={"title": "integration test title", "genre": "test", "popularity": 3.0})
    pipe.zadd(keys["own_cf"], {content.kept_id: 0.5})
    pipe.zadd(keys["kept_cf"], {content.content_id: 0.9, new_id("other"): 0.4})
    pipe.zadd(keys["recs"], {content.content_id: 1.0, content.kept_id: 0.5})
    pipe.execute()
    return content


def unseed(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis, content: ExpiredContent) -> None:
    aurora.run("DELETE FROM content_licenses WHERE content_id = :c", c=content.content_id)
    delete_item(target, "catalog", {"content_id": content.content_id})
    cache.delete(*content.keys.values())
    cache.srem("expired:content", content.content_id)


def finished(target: Target, execution_arn: str) -> dict[str, Any]:
    execution = wait_for(f"execution {execution_arn} to finish",
                         lambda: target.client("stepfunctions").describe_execution(executionArn=execution_arn),
                         EXECUTION_TIMEOUT_S, ready=lambda e: e["status"] != "RUNNING")
    assert execution["status"] == "SUCCEEDED", f"execution {execution_arn} ended {execution['status']}: " \
        f"{execution.get('error')} {execution.get('cause')}"
    return execution


@pytest.fixture
def expired(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis) -> Iterator[ExpiredContent]:
    content = seed(target, aurora, cache)
    yield content
    unseed(target, aurora, cache, content)


@pytest.fixture(scope="module")
def direct_run(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis) -> Iterator[Run]:
    """One execution started directly (named, with today's run_date) over freshly seeded content."""
    content = seed(target, aurora, cache)
    try:
        started = time.monotonic()
        arn = target.client("stepfunctions").start_execution(
            stateMachineArn=target.output("state_machine_arn"), name=f"it-expiration-{uuid.uuid4().hex[:16]}",
            input=json.dumps({"run_date": datetime.now(UTC).date().isoformat()}))["executionArn"]
        yield Run(content, finished(target, arn), started, time.monotonic())
    finally:
        unseed(target, aurora, cache, content)


def output_with(run: Run, key: str) -> dict[str, Any]:
    """The output of the parallel branch that returns ``key``."""
    matches = [out for out in run.branch_outputs if key in out]
    assert len(matches) == 1, f"expected one branch output with {key!r}, got {run.branch_outputs}"
    return matches[0]


def test_direct_execution_flags_expired_content_in_catalog(
        target: Target, direct_run: Run, latency: Callable[..., float]) -> None:
    latency("StartExecution → SUCCEEDED (expiration)", direct_run.started, direct_run.ended)
    item = get_item(target, "catalog", {"content_id": direct_run.seeded.content_id})
    assert item is not None and item.get("expired") is True and item.get("expired_at"), \
        f"catalog item after the run: {item}"


def test_direct_execution_purges_expired_content_from_redis(direct_run: Run, cache: redis.Redis) -> None:
    content, keys = direct_run.seeded, direct_run.seeded.keys
    assert cache.exists(keys["content"], keys["own_cf"]) == 0, "content:<id> and cf:<id> should be deleted"
    assert cache.zrange(keys["recs"], 0, -1) == [content.kept_id], f"{keys['recs']} still ranks the expired id"
    assert content.content_id not in cache.zrange(keys["kept_cf"], 0, -1), f"{keys['kept_cf']} still lists it"
    assert cache.sismember("expired:content", content.content_id), "the id is missing from expired:content"


def test_direct_execution_issues_the_athena_archive_query(target: Target, direct_run: Run) -> None:
    query_id = output_with(direct_run, "query_execution_id")["query_execution_id"]
    assert query_id, f"ArchiveViews returned no query execution id: {direct_run.branch_outputs}"
    query = target.client("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert query["WorkGroup"] == target.output("athena_workgroup")
    assert direct_run.seeded.content_id in query["Query"], f"the archive query does not select the id: {query['Query']}"


def test_direct_execution_history_shows_the_parallel_branches(target: Target, direct_run: Run) -> None:
    events = target.client("stepfunctions").get_execution_history(
        executionArn=direct_run.execution["executionArn"], maxResults=1000)["events"]
    ids = {e["type"]: e["id"] for e in events if e["type"].startswith("ParallelState")}
    assert {"ParallelStateEntered", "ParallelStateSucceeded", "ParallelStateExited"} <= set(ids), \
        f"Parallel state events in the history: {sorted(ids)}"
    inside = {e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"
              and ids["ParallelStateEntered"] < e["id"] < ids["ParallelStateExited"]}
    assert inside == BRANCHES, f"tasks entered inside the Parallel state: {sorted(inside)}, expected {sorted(BRANCHES)}"


def test_scheduled_run_expires_content(
        target: Target, expired: ExpiredContent, latency: Callable[..., float]) -> None:
    if not target.is_sandbox:
        pytest.skip("a real account cannot fire an EventBridge schedule on demand; the rule "
                    f"{target.output('event_rule_name')} runs on its schedule (check its executions then)")
    started = time.monotonic()
    rule = target.output("event_rule_name")
    request = urllib.request.Request(f"{target.sandbox['control_url']}/rules/{rule}/fire", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        fired = json.loads(response.read())["fired"]
    assert [f.get("arn") for f in fired] == [target.output("state_machine_arn")], f"targets fired: {fired}"
    execution = finished(target, fired[0]["executionArn"])
    latency("schedule fire → SUCCEEDED (expiration)", started)
    archive = [out for out in json.loads(execution["output"]) if "query_execution_id" in out]
    query = target.client("athena").get_query_execution(QueryExecutionId=archive[0]["query_execution_id"])
    assert expired.content_id in query["QueryExecution"]["Query"], "the scheduled run did not find the content"
    item = get_item(target, "catalog", {"content_id": expired.content_id})
    assert item is not None and item.get("expired") is True, f"catalog item after the scheduled run: {item}"
