"""CloudWatch: a new metric alarm starts in INSUFFICIENT_DATA, as on AWS ("The alarm has just
started": alarm-evaluation.html), where moto starts it OK; ``tapharness.sandbox.alarms`` then
evaluates it on CloudWatch's schedule, so its first evaluation is a state change with actions."""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import Alarm

from tapharness.sandbox.patches import patch

_ALARM_INIT = Alarm.__init__


@patch(Alarm, "__init__")
def _alarm_init(self: Alarm, *args: Any, **kwargs: Any) -> None:
    _ALARM_INIT(self, *args, **kwargs)
    self.state_value = "INSUFFICIENT_DATA"
