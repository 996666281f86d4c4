"""Aurora as AWS runs it: its first instance is the writer, and a minor upgrade AWS applies in the
maintenance window is not a change the next plan would undo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tapharness.deployed import Target

pytestmark = pytest.mark.integration


def _cluster(target: Target) -> dict:
    endpoint = str(target.output("aurora_cluster_endpoint"))
    [cluster] = [c for c in target.client("rds").describe_db_clusters()["DBClusters"] if c["Endpoint"] == endpoint]
    return cluster


def test_the_writer_instance_is_the_clusters_writer(target: Target) -> None:
    members = {m["DBInstanceIdentifier"].rsplit("-", 1)[-1]: m["IsClusterWriter"]
               for m in _cluster(target)["DBClusterMembers"]}
    assert members == {"writer": True, "reader": False}


def test_a_minor_upgrade_by_aws_leaves_the_next_plan_without_changes(target: Target) -> None:
    if not target.is_sandbox:
        pytest.skip("upgrading the engine in an account is the maintenance window's, not a test's")
    cluster = _cluster(target)
    major, minor = cluster["EngineVersion"].split(".")
    target.client("rds").modify_db_cluster(DBClusterIdentifier=cluster["DBClusterIdentifier"],
                                           EngineVersion=f"{major}.{int(minor) + 2}", ApplyImmediately=True)
    plan = subprocess.run([sys.executable, "-m", "tapharness.sandbox", "plan", "--stack", "hotel_booking",
                           "--env", target.env], capture_output=True, text=True, timeout=540, check=False)
    assert plan.returncode == 0, f"the plan wants changes after the upgrade:\n{plan.stdout}\n{plan.stderr}"
