"""Topology parity: dev, staging and prod plan the same resources, and only the attributes a stack's
allow-list names differ. A stack's test module provides ``parity_allowed`` (its allow-list of
(resource address glob, attribute path glob) pairs) and imports these tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from tapharness.parity import disallowed_differences
from tapharness.plan import PlanSummary


@pytest.fixture(params=("staging", "prod"))
def other(request: pytest.FixtureRequest, plans: Callable[[str], PlanSummary]) -> PlanSummary:
    return plans(request.param)


@pytest.mark.plan
def test_every_environment_plans_the_same_resource_addresses_and_types(dev: PlanSummary, other: PlanSummary) -> None:
    missing = sorted(set(dev.types.items()) - set(other.types.items()))
    extra = sorted(set(other.types.items()) - set(dev.types.items()))
    assert not missing and not extra, f"{other.env} vs dev: missing {missing}, extra {extra}"


@pytest.mark.plan
def test_only_allowed_attributes_differ_from_dev(dev: PlanSummary, other: PlanSummary,
                                                 parity_allowed: Iterable[tuple[str, str]]) -> None:
    offending = disallowed_differences(dev, other, parity_allowed)
    assert not offending, f"{other.env} differs from dev outside the allow-list:\n" + "\n".join(offending)
