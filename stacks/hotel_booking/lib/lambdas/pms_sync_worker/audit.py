"""What each PMS acknowledged, in Aurora (pms_inventory): reconciliation's view of the PMS."""

from __future__ import annotations

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


def acknowledged_version(update: dict[str, Any]) -> int | None:
    db.ensure_schema("pms_inventory", SCHEMA)
    rows = db.in_transaction(lambda conn: conn.run(
        "SELECT version FROM pms_inventory WHERE property_id = :p AND room_id = :r AND stay_date = CAST(:d AS date)",
        p=update["property_id"], r=update["room_id"], d=update["stay_date"]))
    return int(rows[0][0]) if rows else None


def record(update: dict[str, Any]) -> None:
    """Upsert, never going back to an older version (late or repeated messages)."""
    db.ensure_schema("pms_inventory", SCHEMA)
    db.in_transaction(lambda conn: conn.run(
        """INSERT INTO pms_inventory (property_id, room_id, stay_date, pms_id, available_units, version)
           VALUES (:p, :r, CAST(:d AS date), :pms, :units, :version)
           ON CONFLICT (property_id, room_id, stay_date) DO UPDATE
           SET available_units = EXCLUDED.available_units, version = EXCLUDED.version,
               pms_id = EXCLUDED.pms_id, synced_at = now()
           WHERE pms_inventory.version < EXCLUDED.version""",
        p=update["property_id"], r=update["room_id"], d=update["stay_date"], pms=update["pms_id"],
        units=update["available_units"], version=update["version"]))
