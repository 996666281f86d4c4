"""The circuit breaker of one PMS in DynamoDB, shared by every worker of its queue.

Every change is one atomic update, so concurrent workers never lose each other's news:
- a failure is counted with ``ADD`` (two workers failing at once count two) and opens the breaker
  once the shared count reaches the threshold, or at once when it was the half-open probe that
  failed; an open breaker is never shortened;
- a success closes the breaker only if nobody opened it while the call was in flight
  (``open_until <= now``), so one worker's success cannot close another's fresh opening;
- half-open admits one probe: the worker whose conditional update takes ``probe_until`` calls the
  PMS; the others wait, as if the breaker were still open, until the probe ends or its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError
from breaker import Breaker
from tap_common import aws, config


@dataclass(frozen=True)
class Admission:
    call: bool          # this worker may call the PMS (closed, or it holds the half-open probe)
    wait_s: float       # otherwise: how long to wait before trying again
    state: Breaker


def _table() -> str:
    return config.require("CIRCUIT_TABLE")


def _key(pms_id: str) -> dict[str, dict[str, str]]:
    return {"pms_id": {"S": pms_id}}


def _breaker(item: dict[str, dict[str, str]] | None) -> Breaker:
    item = item or {}
    return Breaker(int(item.get("failures", {}).get("N", "0")), float(item.get("open_until", {}).get("N", "0")),
                   float(item.get("probe_until", {}).get("N", "0")))


def load(pms_id: str) -> Breaker:
    return _breaker(aws.client("dynamodb").get_item(TableName=_table(), Key=_key(pms_id),
                                                    ConsistentRead=True).get("Item"))


def admit(pms_id: str, now: float, probe_lease_s: float) -> Admission:
    """Whether this worker may call the PMS now (taking the probe when the breaker is half-open)."""
    state = load(pms_id)
    phase = state.state(now)
    if phase == "closed":
        return Admission(True, 0.0, state)
    if phase == "open":
        return Admission(False, state.seconds_left(now), state)
    try:
        aws.client("dynamodb").update_item(
            TableName=_table(), Key=_key(pms_id), UpdateExpression="SET probe_until = :lease",
            ConditionExpression="open_until = :seen AND (attribute_not_exists(probe_until) OR probe_until < :now)",
            ExpressionAttributeValues={":lease": {"N": repr(now + probe_lease_s)}, ":now": {"N": repr(now)},
                                       ":seen": {"N": repr(state.open_until)}})
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        return Admission(False, max(1.0, state.probe_until - now), state)
    return Admission(True, 0.0, Breaker(state.failures, state.open_until, now + probe_lease_s))


def failed(pms_id: str, now: float, threshold: int, open_seconds: int, seen: Breaker) -> Breaker:
    """Count one failure (``seen``: the state this worker was admitted on); open the breaker at
    the shared threshold, or at once when this worker's half-open probe failed."""
    client = aws.client("dynamodb")
    counted = _breaker(client.update_item(
        TableName=_table(), Key=_key(pms_id), UpdateExpression="ADD failures :one SET updated_at = :now",
        ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"N": repr(now)}}, ReturnValues="ALL_NEW")["Attributes"])
    before = Breaker(counted.failures - 1, seen.open_until)
    if before.after_failure(now, threshold, open_seconds).state(now) != "open":
        return counted
    until = now + open_seconds
    try:
        opened = client.update_item(
            TableName=_table(), Key=_key(pms_id), UpdateExpression="SET open_until = :until REMOVE probe_until",
            ConditionExpression="attribute_not_exists(open_until) OR open_until < :until",
            ExpressionAttributeValues={":until": {"N": repr(until)}}, ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        return load(pms_id)  # another worker opened it for longer
    return _breaker(opened)


def succeeded(pms_id: str, now: float, seen: Breaker) -> Breaker:
    """Close the breaker after a delivery, unless it was opened meanwhile; nothing to write when
    this worker saw it closed with no failures."""
    if not (seen.failures or seen.open_until or seen.probe_until):
        return seen
    try:
        aws.client("dynamodb").update_item(
            TableName=_table(), Key=_key(pms_id),
            UpdateExpression="SET failures = :zero, open_until = :zero, updated_at = :now REMOVE probe_until",
            ConditionExpression="attribute_not_exists(open_until) OR open_until <= :now",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":now": {"N": repr(now)}})
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        return load(pms_id)
    return Breaker()
