"""Flow 5: the content-expiration state machine (FindExpired on Aurora, then in parallel the
pages of MarkExpired on content_catalog and PurgeCache on Redis, and ArchiveViews as an Athena
CTAS awaited to its end), started directly with a named execution and through its EventBridge
schedule.

The direct run gets a run date of its own (a random day decades ahead), so its archive is its
own: a content_licenses row that expired two days before, a catalog item, Redis entries
(``content:<id>``, ``cf:<id>``, the id inside another content's ``cf:`` set and inside a
user's ``recs:`` set), and raw viewing events landed on the day before the run date (one of
them twice, as a redelivery lands it).
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pg8000.native
import pytest
import redis

from tapharness import video
from tapharness.deployed import Target
from tapharness.retry import wait_for
from tapharness.seed import ensure_tables

from .flows import HOP_TIMEOUT_S, delete_item, get_item, new_id, put_item

pytestmark = pytest.mark.integration

EXECUTION_TIMEOUT_S = 3 * HOP_TIMEOUT_S
TASKS_IN_PARALLEL = {"MarkExpired", "PurgeCache", "ArchiveViews", "CheckArchive"}


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


def seed(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis,
         run_date: date | None = None) -> ExpiredContent:
    content = ExpiredContent(new_id("expired"), new_id("kept"), new_id("user"))
    ensure_tables(aurora)
    aurora.run("INSERT INTO content_licenses (content_id, title, license_expiry_date) VALUES (:c, :t, :d)",
               c=content.content_id, t="integration test title",
               d=(run_date or datetime.now(UTC).date()) - timedelta(days=2))
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


RUN_DATE = date(2040, 1, 1) + timedelta(days=random.randrange(365 * 50))


def drop_day(target: Target, day: date) -> None:
    """Remove what a run for `day + 1` leaves: the day's raw and archived objects, its archive table."""
    bucket, s3 = target.output("s3_bucket_names", "archive"), target.client("s3")
    for prefix in (f"raw/year={day:%Y}/month={day:%m}/day={day:%d}/", f"viewing/day={day.isoformat()}/"):
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    glue = target.client("glue")
    try:
        glue.delete_table(DatabaseName=target.output("glue_database_name"), Name=f"viewing_archive_{day:%Y%m%d}")
    except glue.exceptions.EntityNotFoundException:
        return


def land_raw_events(target: Target, content: ExpiredContent, day: date) -> list[str]:
    """Raw events of `day` under raw/year=/month=/day=/ as the activity consumer lands them, the
    first one twice; returns their event ids."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    stamp = f"{day.isoformat()}T12:00:00.000Z"
    records = [{"event_id": event_id, "event_type": "watch", "user_id": content.user_id, "content_id": content.content_id,
                "position_seconds": 60.0 * n, "duration_seconds": 1800.0, "client_timestamp": stamp,
                "received_at": stamp} for n, event_id in enumerate(ids)]
    body = "\n".join(json.dumps(r) for r in [records[0], *records]) + "\n"
    target.client("s3").put_object(Bucket=target.output("s3_bucket_names", "archive"),
                                   Key=f"raw/year={day:%Y}/month={day:%m}/day={day:%d}/it-{uuid.uuid4().hex}.json",
                                   Body=body.encode())
    return ids


@pytest.fixture(scope="module")
def direct_run(target: Target, aurora: pg8000.native.Connection, cache: redis.Redis) -> Iterator[tuple[Run, list[str]]]:
    """One execution started directly (named, with a run date of its own) over freshly seeded content
    and raw events landed the day before."""
    content = seed(target, aurora, cache, RUN_DATE)
    events = land_raw_events(target, content, RUN_DATE - timedelta(days=1))
    try:
        started = time.monotonic()
        arn = target.client("stepfunctions").start_execution(
            stateMachineArn=target.output("state_machine_arn"), name=f"it-expiration-{uuid.uuid4().hex[:16]}",
            input=json.dumps({"run_date": RUN_DATE.isoformat()}))["executionArn"]
        yield Run(content, finished(target, arn), started, time.monotonic()), events
    finally:
        unseed(target, aurora, cache, content)
        drop_day(target, RUN_DATE - timedelta(days=1))


def output_with(run: Run, key: str) -> dict[str, Any]:
    """The output of the parallel branch that returns ``key``."""
    matches = [out for out in run.branch_outputs if key in out]
    assert len(matches) == 1, f"expected one branch output with {key!r}, got {run.branch_outputs}"
    return matches[0]


def test_direct_execution_flags_expired_content_in_catalog(
        target: Target, direct_run: tuple[Run, list[str]], latency: Callable[..., float]) -> None:
    run, _ = direct_run
    latency("StartExecution → SUCCEEDED (expiration)", run.started, run.ended)
    item = get_item(target, "catalog", {"content_id": run.seeded.content_id})
    assert item is not None and item.get("expired") is True and item.get("expired_at"), \
        f"catalog item after the run: {item}"


def test_direct_execution_purges_expired_content_from_redis(direct_run: tuple[Run, list[str]], cache: redis.Redis) -> None:
    content, keys = direct_run[0].seeded, direct_run[0].seeded.keys
    assert cache.exists(keys["content"], keys["own_cf"]) == 0, "content:<id> and cf:<id> should be deleted"
    assert cache.zrange(keys["recs"], 0, -1) == [content.kept_id], f"{keys['recs']} still ranks the expired id"
    assert content.content_id not in cache.zrange(keys["kept_cf"], 0, -1), f"{keys['kept_cf']} still lists it"
    assert cache.sismember("expired:content", content.content_id), "the id is missing from expired:content"


def test_direct_execution_waits_for_the_archive_query_to_succeed(target: Target, direct_run: tuple[Run, list[str]]) -> None:
    archive = output_with(direct_run[0], "query_execution_id")
    assert archive["state"] == "SUCCEEDED", f"the archive branch ended with {archive}"
    query = target.client("athena").get_query_execution(QueryExecutionId=archive["query_execution_id"])["QueryExecution"]
    assert (query["WorkGroup"], query["Status"]["State"]) == (target.output("athena_workgroup"), "SUCCEEDED")


def test_direct_execution_archives_the_previous_days_events_once_each(
        target: Target, direct_run: tuple[Run, list[str]]) -> None:
    day = RUN_DATE - timedelta(days=1)
    archive = video.archived_event_ids(target, day)
    for key in archive:
        assert key.startswith(f"year={day:%Y}/month={day:%m}/"), key
    assert sorted(event for events in archive.values() for event in events) == sorted(direct_run[1])


def test_direct_execution_history_shows_the_parallel_branches(target: Target, direct_run: tuple[Run, list[str]]) -> None:
    events = target.client("stepfunctions").get_execution_history(
        executionArn=direct_run[0].execution["executionArn"], maxResults=1000)["events"]
    entered = [e["id"] for e in events if e["type"] == "ParallelStateEntered"]
    exited = [e["id"] for e in events if e["type"] == "ParallelStateExited"]
    assert entered and exited, f"no Parallel state in the history: {sorted({e['type'] for e in events})}"
    inside = {e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"
              and min(entered) < e["id"] < max(exited)}
    assert inside == TASKS_IN_PARALLEL, \
        f"tasks entered inside the Parallel states: {sorted(inside)}, expected {sorted(TASKS_IN_PARALLEL)}"


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
    assert [out["state"] for out in archive] == ["SUCCEEDED"], f"archive branch: {archive}"
    item = get_item(target, "catalog", {"content_id": expired.content_id})
    assert item is not None and item.get("expired") is True, f"catalog item after the scheduled run: {item}"


def test_a_failed_expiration_run_raises_the_failed_executions_alarm(target: Target) -> None:
    """An operator's run with a malformed run_date fails (the task refuses it); two failed runs in
    two of three minutes raise the alarm, each look starting one and waiting for its end."""
    sfn = target.client("stepfunctions")
    machine = str(target.output("state_machine_arn"))

    def failed_run() -> None:
        arn = sfn.start_execution(stateMachineArn=machine, name=f"bad-date-{uuid.uuid4().hex[:12]}",
                                  input=json.dumps({"run_date": "yesterday"}))["executionArn"]
        ended = wait_for("the run's end", lambda: sfn.describe_execution(executionArn=arn), HOP_TIMEOUT_S,
                         ready=lambda d: d["status"] != "RUNNING")
        assert ended["status"] == "FAILED", ended

    assert target.alarm_fires(str(target.output("alarm_names", "sfn_executions_failed")), failed_run) == "ALARM"


def test_a_schedule_delivery_step_functions_keeps_refusing_is_dead_lettered_and_raises_the_alarm(
        target: Target) -> None:
    """Every StartExecution throttled, EventBridge's retries (the target's policy) included: the
    event lands in async_failures with the reason, and its alarm fires. The faults are cleared
    before this file's next flow (the only other caller of StartExecution) starts."""
    if not target.is_sandbox:
        pytest.skip("throttling Step Functions on purpose needs the sandbox's /_sandbox/faults")
    throttled = {"request": "states StartExecution", "code": "ThrottlingException"}
    target.control("POST", "faults", {"error": {**throttled, "count": 1000}})
    try:
        [delivery] = target.control("POST", f"rules/{target.output('event_rule_name')}/fire")["fired"]
    finally:
        target.control("POST", "faults", {"error": {**throttled, "count": 0}})
    assert delivery["dead_letter"] == target.output("sqs_queue_arns", "async_failures"), delivery
    assert delivery["retries"] == 10 and "ThrottlingException" in delivery["error"], delivery
    assert target.alarm_fires(str(target.output("alarm_names", "dlq_messages_async_failures"))) == "ALARM"
