"""Compare one room-night across its copies; every difference is a finding.

The table in the primary region is the truth. A copy may lag behind it for as long as its SLA
allows (cache 1 s, replicas 10 s, PMS 2 min, each with the grace the stack configures); after
that, or whenever a copy holds the same version with other units, it has drifted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from booking_common.model import Night, parse_iso


@dataclass(frozen=True)
class Graces:
    cache_s: float
    replica_s: float
    pms_s: float


@dataclass(frozen=True)
class Finding:
    kind: str  # overbooking | accounting | cache_drift | replica_drift | pms_drift
    pk: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Copies:
    """What the copies hold for one room-night; None where a copy has nothing."""

    sold: int  # units of the night's allocations
    cache: dict[str, int] | None
    cache_live: bool  # the property's snapshot exists (an absent field then is a miss, not expiry)
    replicas: dict[str, dict[str, Any] | None]  # region -> item
    pms: dict[str, int] | None  # {"available_units", "version"} the PMS acknowledged


def compare(night: Night, copies: Copies, now: datetime, graces: Graces) -> list[Finding]:
    findings: list[Finding] = []
    age = (now - parse_iso(night.updated_at)).total_seconds()
    state = {"available_units": night.available_units, "version": night.version}
    if copies.sold > night.total_units:
        findings.append(Finding("overbooking", night.pk, {"sold": copies.sold, "total_units": night.total_units}))
    elif night.available_units != night.total_units - copies.sold:
        findings.append(Finding("accounting", night.pk, {**state, "sold": copies.sold,
                                                          "total_units": night.total_units}))
    if copies.cache_live and age > graces.cache_s:
        cached = copies.cache
        if cached is None or (cached["units"], cached["version"]) != (night.available_units, night.version):
            findings.append(Finding("cache_drift", night.pk, {"table": state, "cache": cached}))
    for region, item in sorted(copies.replicas.items()):
        replica = None if item is None else {"available_units": int(item["available_units"]),
                                             "version": int(item["version"])}
        diverged = replica is not None and replica["version"] == night.version and replica != state
        behind = replica is None or replica["version"] < night.version
        if diverged or (behind and age > graces.replica_s):
            findings.append(Finding("replica_drift", night.pk, {"region": region, "table": state, "replica": replica}))
    pms = copies.pms
    if (pms is None or pms["version"] < night.version) and age > graces.pms_s:
        findings.append(Finding("pms_drift", night.pk, {"table": state, "pms": pms}))
    return findings


def pending_seconds(night: Night, copies: Copies, now: datetime, graces: Graces) -> float:
    """How long until the first copy that differs from the table but is still within its grace must
    agree (0 when none does): when to compare the night again. A cache that differs in any way
    counts (behind, or a wrong value of the same version, which no stream write will replace)."""
    age = (now - parse_iso(night.updated_at)).total_seconds()
    waits = []
    if copies.cache_live and age <= graces.cache_s and (
            copies.cache is None or (copies.cache["units"], copies.cache["version"]) != (night.available_units,
                                                                                      night.version)):
        waits.append(graces.cache_s - age)
    if age <= graces.replica_s and any(item is None or int(item["version"]) < night.version
                                       for item in copies.replicas.values()):
        waits.append(graces.replica_s - age)
    if age <= graces.pms_s and (copies.pms is None or copies.pms["version"] < night.version):
        waits.append(graces.pms_s - age)
    return min(waits, default=0.0)
