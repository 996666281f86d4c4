"""Fixtures for plan-level tests: one plan per environment, shared by the whole run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tapharness.plan import ENVS, PlanSummary


@pytest.fixture(params=ENVS)
def plan(request: pytest.FixtureRequest, plans: Callable[[str], PlanSummary]) -> PlanSummary:
    """The plan of each environment in turn (tests using it run once per env)."""
    return plans(request.param)


@pytest.fixture
def dev(plans: Callable[[str], PlanSummary]) -> PlanSummary:
    return plans("dev")
