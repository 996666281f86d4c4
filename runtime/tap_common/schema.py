"""The Aurora tables, one definition shared by the functions that write and read them.

Each function calls ``db.ensure_schema`` with the groups it touches, so whichever runs first on
a fresh cluster creates them (idempotent, serialised by an advisory lock).

- content_licenses: the catalogue (title, genre, licence expiry), loaded by the content team.
- content_stats: completions per title (analytics_consumer).
- processed_events: event ids already counted, kept for the redelivery window (analytics_consumer).
- viewer_titles: who fully completed which title, and when (analytics_consumer): co-viewing.
"""

from __future__ import annotations

CATALOGUE = (
    """CREATE TABLE IF NOT EXISTS content_licenses (
        content_id text PRIMARY KEY,
        title text,
        genre text,
        license_expiry_date date)""",
    "CREATE INDEX IF NOT EXISTS content_licenses_expiry ON content_licenses (license_expiry_date)",
)

ANALYTICS = (
    """CREATE TABLE IF NOT EXISTS content_stats (
        content_id text PRIMARY KEY,
        view_count bigint NOT NULL DEFAULT 0,
        full_completions bigint NOT NULL DEFAULT 0,
        completion_ratio_sum double precision NOT NULL DEFAULT 0,
        completion_rate double precision NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS processed_events (
        event_id text PRIMARY KEY,
        processed_at timestamptz NOT NULL DEFAULT now())""",
    "CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at)",
    """CREATE TABLE IF NOT EXISTS viewer_titles (
        user_id text NOT NULL,
        content_id text NOT NULL,
        full_completions bigint NOT NULL DEFAULT 0,
        last_completed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, content_id))""",
    "CREATE INDEX IF NOT EXISTS viewer_titles_last_completed_at ON viewer_titles (last_completed_at)",
)
