"""What each PMS acknowledged, in Aurora (pms_inventory): reconciliation's view of the PMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tap_common import db

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS pms_inventory (
        property_id     text        NOT NULL,
        room_id         text        NOT NULL,
        stay_date       date        NOT NULL,
        pms_id          text        NOT NULL,
        available_units integer     NOT NULL,
        version         bigint      NOT NULL,
        synced_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (property_id, room_id, stay_date)
    )""",
)


def deliver_if_newer(update: dict[str, Any], push: Callable[[], None]) -> bool:
    """Push the update and record it, unless the PMS already acknowledged this version or a newer
    one (False). One transaction holds the room-night's advisory lock throughout: workers of a
    standard queue with two versions of one room-night take turns, so the one holding the older
    version sees the newer one recorded and never pushes after it."""
    db.ensure_schema("pms_inventory", SCHEMA)

    def work(conn: Any) -> bool:
        conn.run("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))",
                 key=f"{update['property_id']}#{update['room_id']}#{update['stay_date']}")
        # A statement of its own after the lock: under READ COMMITTED each statement takes its snapshot
        # when it starts, so only this one sees what the worker we waited for committed.
        rows = conn.run(
            "SELECT version FROM pms_inventory WHERE property_id = :p AND room_id = :r AND stay_date = CAST(:d AS date)",
            p=update["property_id"], r=update["room_id"], d=update["stay_date"])
        if rows and int(rows[0][0]) >= update["version"]:
            return False
        push()
        conn.run(
            """INSERT INTO pms_inventory (property_id, room_id, stay_date, pms_id, available_units, version)
               VALUES (:p, :r, CAST(:d AS date), :pms, :units, :version)
               ON CONFLICT (property_id, room_id, stay_date) DO UPDATE
               SET available_units = EXCLUDED.available_units, version = EXCLUDED.version,
                   pms_id = EXCLUDED.pms_id, synced_at = now()
               WHERE pms_inventory.version < EXCLUDED.version""",
            p=update["property_id"], r=update["room_id"], d=update["stay_date"], pms=update["pms_id"],
            units=update["available_units"], version=update["version"])
        return True

    return db.in_transaction(work)
