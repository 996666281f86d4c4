"""Flow 8: the CloudWatch alarms and log groups the stack outputs exist, and every saved Logs
Insights query finds rows once the pipeline has run: a viewer's watch and completion, a refused
request, and a function that fails."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tapharness.deployed import Target
from tapharness.retry import WaitTimeout, wait_for

from .flows import HOP_TIMEOUT_S, Api, Clock, ViewingEvent, new_id, wait_for_summary

pytestmark = pytest.mark.integration

Rows = list[dict[str, str]]
# What each saved query must show after the traffic below (a row with these fields or values).
EXPECTED: dict[str, Callable[[Target, Rows], bool]] = {
    "top-content-by-events": lambda _, rows: {"watch", "complete"} <= {r.get("event_type") for r in rows},
    "user-event-timeline": lambda _, rows: any("user_id" in r and "position_seconds" in r for r in rows),
    "completion-funnel": lambda _, rows: {"completion_detector", "analytics_consumer", "achievements_consumer"}
    <= {r.get("service") for r in rows},
    "errors-by-function": lambda target, rows: any(
        r.get("@log", "").endswith(":" + target.output("log_group_names", "activity_consumer")) for r in rows),
    "slow-recommendations": lambda _, rows: any(float(r.get("invocations", 0)) >= 1 and "p95_ms" in r for r in rows),
    "api-errors": lambda _, rows: any(r.get("status") == "400" and r.get("resourcePath") == "/watch" for r in rows),
}


def test_every_alarm_in_the_outputs_exists(target: Target) -> None:
    names = sorted(target.output("alarm_names").values())
    found: set[str] = set()
    for page in target.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNames=names):
        found.update(alarm["AlarmName"] for alarm in page["MetricAlarms"])
    assert names and set(names) <= found, f"alarms missing: {sorted(set(names) - found)}"


def test_every_log_group_in_the_outputs_exists(target: Target) -> None:
    logs = target.client("logs")
    missing = []
    for name in sorted(target.output("log_group_names").values()):
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if name not in {g["logGroupName"] for g in groups}:
            missing.append(name)
    assert not missing, f"log groups missing: {missing}"


@pytest.fixture(scope="module")
def traffic(target: Target, api: Api) -> int:
    """What the saved queries look for, made now; returns the epoch second it started."""
    started = int(time.time()) - 60
    user, clock, content = new_id("user"), Clock(), new_id("content")
    api.send(ViewingEvent("watch", user, content, 120.0, 1000.0, clock.tick()))
    api.send(ViewingEvent("complete", user, content, 990.0, 1000.0, clock.tick()))
    assert api.post_bytes("watch", b"{not json").status == 400
    failed = target.client("lambda").invoke(FunctionName=target.output("lambda_function_names", "activity_consumer"),
                                            Payload=b'{"not": "a kinesis event"}')
    assert failed.get("FunctionError"), "a Kinesis consumer invoked without records should fail"
    wait_for_summary(target, user, "the completion applied", lambda s: s.get("completed_count") == 1)
    return started


def query_rows(target: Target, key: str, since: int) -> Rows:
    logs = target.client("logs")
    name = target.output("logs_insights_query_names", key)
    [definition] = [d for d in logs.describe_query_definitions(queryDefinitionNamePrefix=name)["queryDefinitions"]
                    if d["name"] == name]
    query_id = logs.start_query(logGroupNames=definition["logGroupNames"], startTime=since,
                                endTime=int(time.time()) + 300, queryString=definition["queryString"])["queryId"]
    result = wait_for(f"query {key} to complete", lambda: logs.get_query_results(queryId=query_id), 60,
                      ready=lambda r: r["status"] not in ("Scheduled", "Running"))
    assert result["status"] == "Complete", f"query {key} ended {result['status']}"
    return [{cell["field"]: cell["value"] for cell in row} for row in result["results"]]


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_saved_logs_insights_query_finds_the_pipelines_rows(target: Target, traffic: int, key: str) -> None:
    seen: list[Rows] = []

    def rows() -> Rows:
        seen.append(query_rows(target, key, traffic))
        return seen[-1]

    try:
        wait_for(f"the saved query {key} to show the traffic", rows, HOP_TIMEOUT_S,
                 ready=lambda found: EXPECTED[key](target, found))
    except WaitTimeout as exc:
        raise AssertionError(f"{key} returned {json.dumps(seen[-1] if seen else None)[:2000]}") from exc


def test_every_saved_query_is_checked_here(target: Target) -> None:
    assert sorted(target.output("logs_insights_query_names")) == sorted(EXPECTED)
