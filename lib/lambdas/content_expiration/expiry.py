"""Pure parts of the nightly expiration: task input parsing and the Athena CTAS text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

_CONTENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUERY_ID = re.compile(r"[a-zA-Z0-9-]{1,128}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_]{1,128}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9_./=-]*")


def run_date(task_input: Mapping[str, Any], today: date | None = None) -> date:
    """`run_date` from the input (YYYY-MM-DD), else today in UTC."""
    raw = task_input.get("run_date")
    if raw is None:
        return today or datetime.now(UTC).date()
    if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise ValueError(f"run_date must be YYYY-MM-DD, got {raw!r}")
    return date.fromisoformat(raw)


def content_ids(task_input: Mapping[str, Any]) -> list[str]:
    """Distinct, validated content ids of the task input, sorted."""
    raw = task_input.get("content_ids", [])
    if not isinstance(raw, list):
        raise TypeError("content_ids must be a list")
    for content_id in raw:
        if not isinstance(content_id, str) or not _CONTENT_ID.fullmatch(content_id):
            raise ValueError(f"invalid content id {content_id!r}")
    return sorted(set(raw))


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def page_after(task_input: Mapping[str, Any]) -> str:
    """The paging cursor of the input (the last content id of the previous page), or ""."""
    raw = task_input.get("after")
    if raw is None:
        return ""
    if not isinstance(raw, str) or not _CONTENT_ID.fullmatch(raw):
        raise ValueError(f"after must be a content id, got {raw!r}")
    return raw


def query_execution_id(task_input: Mapping[str, Any]) -> str | None:
    raw = task_input.get("query_execution_id")
    if raw is None:
        return None
    if not isinstance(raw, str) or not _QUERY_ID.fullmatch(raw):
        raise ValueError(f"query_execution_id must be an Athena query execution id, got {raw!r}")
    return raw


def archived_day(day: date) -> date:
    """The run of `day` archives the day that ended before it."""
    return day - timedelta(days=1)


def archive_query(database: str, raw_table: str, bucket: str, prefix: str, day: date) -> tuple[str, str]:
    """(table name, CTAS statement) archiving the raw viewing events of `day` to
    s3://bucket/prefix/day=YYYY-MM-DD/year=YYYY/month=MM/ as Parquet, one row per event_id (raw
    objects can hold the same event twice after a redelivery). The WHERE names the raw table's
    partition (year, month, day), so Athena's partition projection reads that one day only."""
    database = _checked(_IDENTIFIER, database, "database name")
    raw_table = _checked(_IDENTIFIER, raw_table, "table name")
    bucket = _checked(_BUCKET, bucket, "bucket name")
    prefix = _checked(_PREFIX, prefix, "prefix")
    table = f"viewing_archive_{day:%Y%m%d}"
    location = f"s3://{bucket}/{prefix}day={day.isoformat()}/"
    sql = f"""CREATE TABLE "{database}"."{table}"
WITH (format = 'PARQUET', write_compression = 'SNAPPY',
      external_location = '{location}',
      partitioned_by = ARRAY['year', 'month'])
AS SELECT event_id, event_type, user_id, content_id, position_seconds, duration_seconds,
          client_timestamp, received_at, year, month
FROM (SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY received_at) AS copy
      FROM "{database}"."{raw_table}"
      WHERE year = '{day:%Y}' AND month = '{day:%m}' AND day = '{day:%d}')
WHERE copy = 1"""
    return table, sql
