"""Aurora: the writer is the writer, and AWS's minor upgrades do not turn into plan changes."""

from __future__ import annotations

import pytest

from tapharness.plan import PlanSummary

pytestmark = pytest.mark.plan


def _configuration(plan: PlanSummary, address: str) -> dict:
    [found] = [r for r in plan.raw["configuration"]["root_module"]["resources"] if r["address"] == address]
    return found


def test_the_reader_is_created_only_after_the_writer(plan: PlanSummary) -> None:
    # Aurora makes a cluster's first instance its writer: created together, "-reader" could be it.
    assert "aws_rds_cluster_instance.writer" in _configuration(plan, "aws_rds_cluster_instance.reader")["depends_on"]
    assert plan.values["aws_rds_cluster_instance.writer"]["promotion_tier"] == 0
    assert plan.values["aws_rds_cluster_instance.reader"]["promotion_tier"] == 1


@pytest.mark.parametrize("role", ["writer", "reader"])
def test_an_instance_runs_its_clusters_engine_version_and_follows_minor_upgrades(plan: PlanSummary, role: str) -> None:
    address = f"aws_rds_cluster_instance.{role}"
    assert "engine_version" not in _configuration(plan, address)["expressions"]
    assert plan.values[address]["auto_minor_version_upgrade"] is True
