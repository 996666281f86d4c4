"""CloudWatch: a new metric alarm starts in INSUFFICIENT_DATA, as on AWS ("The alarm has just
started": alarm-evaluation.html), where moto starts it OK; ``tapharness.sandbox.alarms`` then
evaluates it on CloudWatch's schedule, so its first evaluation is a state change with actions. A
datum put without a timestamp is stamped on the sandbox's clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import Alarm, CloudWatchBackend

from tapharness.sandbox import clock
from tapharness.sandbox.patches import patch

_ALARM_INIT = Alarm.__init__


@patch(Alarm, "__init__")
def _alarm_init(self: Alarm, *args: Any, **kwargs: Any) -> None:
    _ALARM_INIT(self, *args, **kwargs)
    self.state_value = "INSUFFICIENT_DATA"


# PutMetricData without a Timestamp: CloudWatch stamps the datum with the time it received it, which
# in the sandbox is the sandbox's clock (``clock``), the time its alarms are evaluated on.
_PUT_METRIC_DATA = CloudWatchBackend.put_metric_data


@patch(CloudWatchBackend, "put_metric_data")
def _put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    received = datetime.fromtimestamp(clock.now(), UTC).replace(tzinfo=None)  # moto keeps naive UTC
    _PUT_METRIC_DATA(self, namespace, [datum if datum.get("Timestamp") else {**datum, "Timestamp": received}
                                       for datum in metric_data])
