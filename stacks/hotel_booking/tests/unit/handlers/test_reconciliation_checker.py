"""reconciliation_checker: every copy of a recently changed night is compared with the table."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import REPLICA_REGION, ago, load_package, put_allocation, put_night, stay

rc = load_package("reconciliation_checker", "handler", "consistency")
Night = rc.consistency.Night
GRACES = rc.consistency.Graces(cache_s=5, replica_s=10, pms_s=120)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def a_night(units: int = 4, version: int = 3, age_s: float = 600) -> Any:
    updated = (NOW - timedelta(seconds=age_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Night("h1", "deluxe-king", "2027-01-10", units, 10, version, updated)


def copies(sold: int = 6, cache: Any = "same", replica: Any = "same", pms: Any = "same", live: bool = True,
           units: int = 4) -> Any:
    """The copies of a_night(units=units); "same" copies agree with the table."""
    same = {"available_units": units, "version": 3}
    return rc.consistency.Copies(
        sold=sold, cache={"units": units, "version": 3} if cache == "same" else cache, cache_live=live,
        replicas={"eu-west-1": same if replica == "same" else replica}, pms=same if pms == "same" else pms)


def kinds(night: Any, found: Any) -> list[str]:
    return [f.kind for f in rc.consistency.compare(night, found, NOW, GRACES)]


def test_a_night_whose_copies_all_agree_has_no_finding() -> None:
    assert kinds(a_night(), copies()) == []


def test_more_units_allocated_than_exist_is_overbooking() -> None:
    assert kinds(a_night(units=0), copies(sold=11, units=0)) == ["overbooking"]


def test_available_units_that_disagree_with_the_allocations_are_an_accounting_finding() -> None:
    assert kinds(a_night(units=5), copies(sold=6, units=5)) == ["accounting"]


@pytest.mark.parametrize("cache", [{"units": 9, "version": 3}, {"units": 4, "version": 2}, None])
def test_a_cache_that_differs_after_its_grace_is_drift(cache: Any) -> None:
    assert kinds(a_night(), copies(cache=cache)) == ["cache_drift"]


def test_a_cache_still_within_its_one_second_sla_is_not_drift() -> None:
    assert kinds(a_night(age_s=1), copies(cache={"units": 5, "version": 2})) == []


def test_an_expired_snapshot_is_not_drift() -> None:
    assert kinds(a_night(), copies(cache=None, live=False)) == []


def test_a_replica_behind_for_longer_than_the_lag_alarm_is_drift() -> None:
    assert kinds(a_night(age_s=11), copies(replica={"available_units": 5, "version": 2}, pms="same")) == ["replica_drift"]
    assert kinds(a_night(age_s=3), copies(replica={"available_units": 5, "version": 2}, pms="same")) == []


def test_a_replica_with_the_same_version_but_other_units_has_diverged_at_once() -> None:
    assert kinds(a_night(age_s=1), copies(cache="same", replica={"available_units": 9, "version": 3})) == ["replica_drift"]


def test_a_pms_behind_for_longer_than_two_minutes_is_drift() -> None:
    assert kinds(a_night(age_s=121), copies(pms={"available_units": 5, "version": 2})) == ["pms_drift"]
    assert kinds(a_night(age_s=60), copies(pms=None)) == []


@pytest.fixture
def env(aws: Any, redis_env: Any, postgres_env: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in {"REPLICA_REGIONS": REPLICA_REGION, "RECONCILE_WINDOW_SECONDS": "600", "MAX_HOT_KEYS": "500",
                        "CACHE_GRACE_SECONDS": "5", "REPLICA_LAG_SECONDS": "10", "PMS_GRACE_SECONDS": "120"}.items():
        monkeypatch.setenv(name, value)
    return {"redis": redis_env, "pg": postgres_env}


def consistent_night(env: dict[str, Any], units: int = 8, sold: int = 2, version: int = 3, age_s: float = 600) -> str:
    """A night whose every copy agrees: table, replica, cache, PMS record, hot mark."""
    updated = ago(age_s)
    pk = put_night("h1", "deluxe-king", stay(30), units, version=version, updated_at=updated)
    put_night("h1", "deluxe-king", stay(30), units, version=version, updated_at=updated, region=REPLICA_REGION)
    for i in range(sold):
        put_allocation(pk, f"b{i}")
    env["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": units, "version": version}))
    env["redis"].zadd("hot:changes", {pk: time.time()})
    env["pg"].run("CREATE TABLE pms_inventory (property_id text, room_id text, stay_date date, pms_id text, "
                  "available_units integer, version bigint, synced_at timestamptz, "
                  "PRIMARY KEY (property_id, room_id, stay_date))")
    env["pg"].run("INSERT INTO pms_inventory VALUES ('h1', 'deluxe-king', CAST(:d AS date), 'opera', :u, :v, now())",
                  d=stay(30), u=units, v=version)
    return pk


def test_the_hot_nights_are_checked_and_a_consistent_one_reports_nothing(env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    result = rc.handler.lambda_handler({}, context)
    assert (result["checked"], result["finding_count"]) == (1, 0), result


def test_a_cache_written_behind_the_tables_back_is_found(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    env["redis"].hset("avail:h1", f"deluxe-king#{stay(30)}", json.dumps({"units": 9, "version": 3}))
    result = rc.handler.lambda_handler({}, context)
    assert [(f["kind"], f["pk"]) for f in result["findings"]] == [("cache_drift", pk)]


def test_a_replica_written_behind_the_tables_back_is_found(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    put_night("h1", "deluxe-king", stay(30), 1, version=3, updated_at=ago(600), region=REPLICA_REGION)
    result = rc.handler.lambda_handler({}, context)
    assert [(f["kind"], f["pk"], f["detail"]["region"]) for f in result["findings"]] == [
        ("replica_drift", pk, REPLICA_REGION)]


def test_a_night_the_pms_never_acknowledged_is_found(env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    env["pg"].run("DELETE FROM pms_inventory")
    result = rc.handler.lambda_handler({}, context)
    assert [f["kind"] for f in result["findings"]] == ["pms_drift"]


def test_before_any_pms_acknowledgement_the_missing_table_means_nothing_acknowledged(
        env: dict[str, Any], context: Any) -> None:
    consistent_night(env)
    env["pg"].run("DROP TABLE pms_inventory")
    result = rc.handler.lambda_handler({}, context)
    assert [f["kind"] for f in result["findings"]] == ["pms_drift"]


def test_named_room_nights_are_checked_instead_of_the_hot_set(env: dict[str, Any], context: Any) -> None:
    pk = consistent_night(env)
    env["redis"].delete("hot:changes")
    assert rc.handler.lambda_handler({}, context)["checked"] == 0
    assert rc.handler.lambda_handler({"room_nights": [pk, "junk"]}, context)["checked"] == 1


@pytest.mark.parametrize("named", [5, "h1#deluxe-king#2027-01-10", {"pk": "h1#deluxe-king#2027-01-10"}])
def test_room_nights_that_are_not_a_list_fail_the_run_naming_the_field(named: Any) -> None:
    with pytest.raises(ValueError, match="room_nights must be a list"):
        rc.handler.room_nights({"room_nights": named}, time.time())
