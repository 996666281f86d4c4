"""Reconciliation: drift injected behind the table's back is found and repaired or alarmed, by the hot
recheck within 30 s of a change (whatever else failed), and by the scheduled audit when it appears
after a change's rechecks."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tapharness.deployed import Target
from tapharness.retry import WaitTimeout, wait_for

pytestmark = pytest.mark.integration


def reconcile(target: Target, room_nights: list[str] | None = None) -> dict[str, Any]:
    """Run the state machine as the schedule does (or for named room-nights) and return its output."""
    sfn = target.client("stepfunctions")
    payload = {} if room_nights is None else {"room_nights": room_nights}
    arn = sfn.start_execution(stateMachineArn=target.output("state_machine_arn"), input=json.dumps(payload))["executionArn"]
    run = wait_for("the reconciliation run", lambda: sfn.describe_execution(executionArn=arn), timeout=120,
                   ready=lambda r: r["status"] != "RUNNING")
    assert run["status"] == "SUCCEEDED", run
    return json.loads(run.get("output") or "{}")


def test_a_change_the_cache_cannot_take_is_repaired_by_the_hot_recheck_within_30_seconds(
        api: Any, inventory: Any, target: Target, stay: Callable[[int], str]) -> None:
    """The cache already holds a wrong value under the version the booking will write (a corrupt
    entry): cache_updater's version-guarded write cannot replace it, so only reconciliation can.
    The booking's change reaches the checker through its own stream mapping, which compares it
    again once the cache's grace has passed and has it repaired; no scheduled run is started."""
    property_id = inventory.add_property({"king": ("deluxe", 5)})
    inventory.open_night(property_id, "king", stay(66), total=5)
    redis, key, field = target.connect_redis(), f"avail:{property_id}", f"king#{stay(66)}"
    wait_for("the cache", lambda: redis.hget(key, field), timeout=10)
    redis.hset(key, field, json.dumps({"units": 0, "version": 2}))  # the booking's version, wrong units
    booked = time.monotonic()
    assert api.book(property_id, "king", stay(66))[0] == 201
    try:
        wait_for("the hot recheck's repair", lambda: json.loads(redis.hget(key, field)), timeout=30,
                 ready=lambda cached: cached == {"units": 4, "version": 2})
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}; what the checker and the resolver logged: {recent_logs(target)}") from exc
    assert time.monotonic() - booked < 30


def recent_logs(target: Target, seconds: float = 60) -> dict[str, list[dict[str, Any]]]:
    """The last minute's log messages of the two reconciliation functions (a failure's evidence)."""
    logs = target.client("logs")
    found: dict[str, list[dict[str, Any]]] = {}
    for function in ("reconciliation_checker", "overbooking_resolver"):
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{target.output('lambda_function_names')[function]}",
                                        startTime=int((time.time() - seconds) * 1000))["events"]
        messages = [json.loads(e["message"]) for e in events if e["message"].lstrip().startswith("{")]
        found[function] = [{k: m[k] for k in ("timestamp", "message", "source", "checked", "findings", "pending",
                                               "nights", "cache_repaired", "error") if k in m}
                           for m in messages if "message" in m][-15:]
    return found


def test_an_overbooking_from_another_region_is_moved_by_the_hot_recheck_within_30_seconds(
        api: Any, inventory: Any, target: Target, stay: Callable[[int], str]) -> None:
    """The other region's sale arrives as its allocation and the night's replicated update (its
    version moved on): the night's change is compared within seconds, and the newest guest moved
    to the equivalent room without waiting for the 5-minute audit."""
    property_id = inventory.add_property({"king": ("deluxe", 1), "twin": ("deluxe", 2)})
    twin = inventory.open_night(property_id, "twin", stay(67), total=2)
    king = overbook_king(api, inventory, target, property_id, stay(67), stay(68))
    night = inventory.night(king)
    client, table = target.client("dynamodb"), str(target.output("dynamodb_table_name"))
    client.update_item(TableName=table, Key={"pk": {"S": king}, "sk": {"S": "INVENTORY"}},
                       UpdateExpression="SET version = :v", ExpressionAttributeValues={":v": {"N": str(night["version"] + 1)}})
    wait_for("the guest moved to the twin", lambda: inventory.allocations(twin), timeout=30,
             ready=lambda moved: len(moved) == 1)
    assert len(inventory.allocations(king)) == 1


def alarm_raised(target: Target, key: str) -> str:
    """Wait for the stack's alarm ``key`` to be in ALARM (a look a minute, ``Target.alarm_fires``)."""
    return target.alarm_fires(str(target.output("alarm_names", key)), timeout=300)


def test_the_audit_repairs_a_cache_written_behind_the_tables_back(api: Any, inventory: Any, target: Target,
                                                                  stay: Callable[[int], str]) -> None:
    property_id = inventory.add_property({"king": ("deluxe", 5)})
    pk = inventory.open_night(property_id, "king", stay(60), total=5)
    assert api.book(property_id, "king", stay(60))[0] == 201
    redis = target.connect_redis()
    field = f"king#{stay(60)}"
    # Not the cache's SLA (test_booking's): another file's flow may hold the stream's shard with a crashing batch.
    wait_for("the cache", lambda: redis.hget(f"avail:{property_id}", field), timeout=60)
    time.sleep(12)  # the hot recheck has looked at this change (~1-3 s after it); its next look is the PMS grace
    redis.hset(f"avail:{property_id}", field, json.dumps({"units": 5, "version": 2}))  # drift, not a change
    result = reconcile(target, [pk])
    assert result["cache_repaired"] == 1, result
    assert json.loads(redis.hget(f"avail:{property_id}", field)) == {"units": 4, "version": 2}


def overbook_king(api: Any, inventory: Any, target: Target, property_id: str, night: str, other_night: str) -> str:
    """The property's king room sold twice for ``night``: booked through the API, and the guest of
    ``other_night`` allocated to it too, as when another region sold it (2 allocations, 1 unit)."""
    king = inventory.open_night(property_id, "king", night, total=1)
    inventory.open_night(property_id, "king", other_night, total=1)
    assert api.book(property_id, "king", night)[0] == 201
    status, other = api.book(property_id, "king", other_night)
    assert status == 201
    client, table = target.client("dynamodb"), str(target.output("dynamodb_table_name"))
    client.put_item(TableName=table, Item={"pk": {"S": king}, "sk": {"S": f"BOOKING#{other['booking_id']}"},
                                           "booking_id": {"S": other["booking_id"]}, "units": {"N": "1"},
                                           "guest_id": {"S": "g-late"}, "created_at": {"S": "2999-01-01T00:00:00.000Z"}})
    return king


def test_the_audit_moves_the_newest_guest_of_an_overbooked_night_to_an_equivalent_room(
        api: Any, inventory: Any, target: Target, stay: Callable[[int], str]) -> None:
    property_id = inventory.add_property({"king": ("deluxe", 1), "twin": ("deluxe", 2)})
    twin = inventory.open_night(property_id, "twin", stay(61), total=2)
    king = overbook_king(api, inventory, target, property_id, stay(61), stay(63))
    result = reconcile(target, [king])
    assert (result["reassigned"], result["unresolved"]) == (1, 0), result
    assert inventory.allocations(king) != inventory.allocations(twin)
    assert (len(inventory.allocations(king)), len(inventory.allocations(twin))) == (1, 1)
    assert inventory.night(twin)["available_units"] == 1


def test_an_overbooking_with_no_equivalent_room_left_raises_the_unresolved_alarm(api: Any, inventory: Any,
                                                                                target: Target,
                                                                                stay: Callable[[int], str]) -> None:
    property_id = inventory.add_property({"king": ("deluxe", 1)})
    king = overbook_king(api, inventory, target, property_id, stay(64), stay(65))
    result = reconcile(target, [king])
    assert (result["reassigned"], result["unresolved"]) == (0, 1), result
    assert alarm_raised(target, "unresolved_overbooking") == "ALARM"


def test_a_replica_that_falls_behind_is_found_and_alarmed(api: Any, inventory: Any, target: Target,
                                                          stay: Callable[[int], str]) -> None:
    if not target.is_sandbox:
        pytest.skip("stalling a region's replication needs the sandbox's replication control")
    region = target.output("dynamodb_replica_regions")[0]
    property_id = inventory.add_property({"king": ("deluxe", 3)})
    pk = inventory.open_night(property_id, "king", stay(62), total=3)
    wait_for("the night to replicate", lambda: inventory.night(pk, region), timeout=10)
    target.control("POST", "replication", {"region": region, "paused": True})
    try:
        assert api.book(property_id, "king", stay(62))[0] == 201
        time.sleep(11)  # past the replication alarm threshold (10 s)
        result = reconcile(target, [pk])
        assert result["replica_drift"] >= 1, result
    finally:
        target.control("POST", "replication", {"region": region, "paused": False})
    wait_for("the replica to catch up", lambda: inventory.night(pk, region), timeout=10,
             ready=lambda night: bool(night) and night["version"] == 2)
    assert alarm_raised(target, "replica_drift") == "ALARM"


def test_a_run_given_room_nights_that_are_not_a_list_fails_and_raises_the_failed_runs_alarm(target: Target) -> None:
    """An operator's run naming one night as a string (not a list) fails, naming the field; each
    look at the alarm starts one such run and waits for its end."""
    sfn = target.client("stepfunctions")

    def failed_run() -> None:
        arn = sfn.start_execution(stateMachineArn=target.output("state_machine_arn"),
                                  input=json.dumps({"room_nights": "h1#king#2027-01-10"}))["executionArn"]
        ended = wait_for("the run's end", lambda: sfn.describe_execution(executionArn=arn), timeout=120,
                         ready=lambda run: run["status"] != "RUNNING")
        assert ended["status"] == "FAILED", ended
        assert "room_nights must be a list" in ended.get("cause", ""), ended

    alarm = str(target.output("alarm_names", "reconciliation_failed"))
    assert target.alarm_fires(alarm, failed_run, timeout=300) == "ALARM"


def test_schedule_deliveries_step_functions_keeps_refusing_land_in_async_failures_and_raise_its_alarm(
        target: Target) -> None:
    if not target.is_sandbox:
        pytest.skip("throttling Step Functions on purpose needs the sandbox's /_sandbox/faults")
    rule = str(target.output("reconciliation_rule_name"))
    # Every StartExecution refused as throttled, EventBridge's three retries included (this file's
    # flows, the only other callers, run one after another).
    target.control("POST", "faults", {"error": {"request": "states StartExecution", "code": "ThrottlingException",
                                                "count": 100}})
    try:
        [delivery] = target.control("POST", f"rules/{rule}/fire")["fired"]
    finally:
        target.control("POST", "faults", {"error": {"request": "states StartExecution", "code": "ThrottlingException",
                                                    "count": 0}})
    assert delivery["retries"] == 3 and delivery["dead_letter"].endswith("-async-failures"), delivery
    assert alarm_raised(target, "async_failures") == "ALARM"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_replication_slower_than_the_sla_for_two_minutes_raises_the_regions_latency_alarm(
        inventory: Any, target: Target, stay: Callable[[int], str], region: str) -> None:
    if not target.is_sandbox:
        pytest.skip("slowing replication on purpose needs the sandbox's /_sandbox/replication")
    assert region in target.output("dynamodb_replica_regions")
    property_id = inventory.add_property({"king": ("deluxe", 2)})
    days = itertools.count(70)

    def replicated_late() -> None:  # one datapoint in this minute: a write seen in the region 11 s later
        pk = inventory.open_night(property_id, "king", stay(next(days)), total=2)
        wait_for(f"the night in {region}", lambda: inventory.night(pk, region), timeout=60)

    target.control("POST", "replication", {"region": region, "delay_s": 11})  # the alarm is at 10,000 ms
    try:
        key = f"replication_latency_{region.replace('-', '_')}"
        assert target.alarm_fires(str(target.output("alarm_names", key)), replicated_late) == "ALARM"
    finally:
        target.control("POST", "replication", {"region": region, "delay_s": 0})
