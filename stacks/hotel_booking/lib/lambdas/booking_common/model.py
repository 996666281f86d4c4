"""Items of the inventory table and the messages about them (contract.md, "Items").

Keys (pk, sk):
    <property>#<room>#<date>, INVENTORY      one room-night: available_units, total_units, version
    <property>#<room>#<date>, BOOKING#<id>   one night of one booking: units, guest_id, created_at
    BOOKING#<id>, BOOKING                    the booking: property, rooms {date: room}, units, status
    HOLD#<request_id>, HOLD                  a request's idempotency lock, expires_at (TTL)
    PROPERTY#<property>, PROPERTY            pms_id and rooms {room_id: {room_class, total_units}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

INVENTORY = "INVENTORY"
BOOKING = "BOOKING"
ALLOCATION_PREFIX = "BOOKING#"
IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def night_pk(property_id: str, room_id: str, stay_date: str) -> str:
    return f"{property_id}#{room_id}#{stay_date}"


def split_night_pk(pk: str) -> tuple[str, str, str]:
    property_id, room_id, stay_date = pk.split("#")
    return property_id, room_id, stay_date


def inventory_key(pk: str) -> dict[str, str]:
    return {"pk": pk, "sk": INVENTORY}


def property_key(property_id: str) -> dict[str, str]:
    return {"pk": f"PROPERTY#{property_id}", "sk": "PROPERTY"}


def booking_key(booking_id: str) -> dict[str, str]:
    return {"pk": f"{ALLOCATION_PREFIX}{booking_id}", "sk": BOOKING}


def hold_key(request_id: str) -> dict[str, str]:
    return {"pk": f"HOLD#{request_id}", "sk": "HOLD"}


def allocation_key(pk: str, booking_id: str) -> dict[str, str]:
    return {"pk": pk, "sk": f"{ALLOCATION_PREFIX}{booking_id}"}


def now_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Night:
    """One room-night of the inventory."""

    property_id: str
    room_id: str
    stay_date: str
    available_units: int
    total_units: int
    version: int
    updated_at: str

    @property
    def pk(self) -> str:
        return night_pk(self.property_id, self.room_id, self.stay_date)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Night:
        """From a deserialised INVENTORY item; KeyError/ValueError when it is not one."""
        property_id, room_id, stay_date = split_night_pk(str(item["pk"]))
        date.fromisoformat(stay_date)
        return cls(property_id, room_id, stay_date, int(item["available_units"]), int(item["total_units"]),
                   int(item["version"]), str(item["updated_at"]))

    def message(self, pms_id: str, reason: str) -> dict[str, Any]:
        """The inventory_updates message about this night (the PMS's new availability)."""
        return {"type": "inventory_changed", "reason": reason, "pms_id": pms_id, "property_id": self.property_id,
                "room_id": self.room_id, "stay_date": self.stay_date, "available_units": self.available_units,
                "total_units": self.total_units, "version": self.version, "updated_at": self.updated_at}

    def publication(self, pms_id: str, reason: str) -> dict[str, Any]:
        """Message and attributes of its inventory_updates publication (``pms_id`` routes it to the PMS's queue)."""
        return {"Message": json.dumps(self.message(pms_id, reason), separators=(",", ":")),
                "MessageAttributes": {"pms_id": {"DataType": "String", "StringValue": pms_id},
                                      "property_id": {"DataType": "String", "StringValue": self.property_id}}}


@dataclass(frozen=True)
class Property:
    property_id: str
    pms_id: str
    rooms: dict[str, dict[str, Any]]  # room_id -> {room_class, total_units}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Property:
        return cls(str(item["pk"]).removeprefix("PROPERTY#"), str(item["pms_id"]), dict(item["rooms"]))

    def equivalent_rooms(self, room_id: str) -> list[str]:
        """Other rooms of the same class, in a stable order."""
        room_class = self.rooms[room_id]["room_class"]
        return sorted(r for r, spec in self.rooms.items() if r != room_id and spec["room_class"] == room_class)
