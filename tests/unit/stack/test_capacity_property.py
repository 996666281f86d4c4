"""Property: any valid choice of capacities plans the same resource graph as dev."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tapharness.plan import Planner, PlanSummary

pytestmark = [pytest.mark.plan, pytest.mark.slow]

LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653]


@st.composite
def capacities(draw: st.DrawFn) -> dict[str, object]:
    rate = draw(st.integers(1, 10_000))
    min_acu = draw(st.sampled_from([0.5, 1, 2, 4, 8]))
    nodes = draw(st.integers(1, 3))
    return {
        "throttle_rate_limit": rate,
        "throttle_burst_limit": draw(st.integers(rate, 20_000)),
        "shard_count": draw(st.integers(1, 16)),
        "event_processor_memory": draw(st.integers(2, 160)) * 64,
        "recommendations_memory": draw(st.integers(2, 160)) * 64,
        # Bounded by visibility_timeout_seconds of dev.tfvars (a precondition of the SQS mappings) and
        # above dev's recommendations duration alarm, 10 s (a precondition of the alarm).
        "timeout_s": draw(st.integers(11, 360)),
        "num_cache_clusters": nodes,
        "min_capacity": min_acu,
        "max_capacity": draw(st.sampled_from([c for c in (1, 2, 4, 8, 16, 32, 64) if c >= min_acu])),
        "log_retention_days": draw(st.sampled_from(LOG_RETENTION_DAYS)),
        "alarm_latency_threshold": draw(st.integers(100, 29_000)),
        "expiration_schedule_expression": draw(st.sampled_from(
            ["rate(1 day)", "rate(12 hours)", "cron(0 3 * * ? *)", "cron(30 1 ? * MON-FRI *)"])),
    }


# No shrinking: each example is a whole plan, and a failure names its values.
@settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=capacities())
def test_valid_capacities_plan_the_same_resource_graph_as_dev(workspace: Planner, dev: PlanSummary,
                                                              values: dict[str, object]) -> None:
    planned = workspace.plan("dev", tf_vars=values)
    # A -var value is recorded in the plan as the text given (tfvars win over -var given before them).
    assert {name: str(planned.variables[name]) for name in values} == {name: str(v) for name, v in values.items()}
    missing = sorted(set(dev.types.items()) - set(planned.types.items()))
    extra = sorted(set(planned.types.items()) - set(dev.types.items()))
    assert not missing and not extra, f"with {values}: missing {missing}, extra {extra}"
