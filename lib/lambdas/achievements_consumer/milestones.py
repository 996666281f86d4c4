"""Milestone rules (pure): badges a user has earned, read from the user's SUMMARY item."""

from __future__ import annotations

VIDEOS_10 = "videos_10"
HOURS_100 = "hours_100"
COMPLETED_VIDEOS_FOR_BADGE = 10
WATCH_SECONDS_FOR_BADGE = 100 * 3600


def earned_badges(completed_count: int, watch_seconds: float) -> list[str]:
    """Badges whose threshold is reached. Thresholds use >=, so a badge missed while a
    message was retried is still awarded by a later one (the conditional put keeps it
    unique)."""
    earned = []
    if completed_count >= COMPLETED_VIDEOS_FOR_BADGE:
        earned.append(VIDEOS_10)
    if watch_seconds >= WATCH_SECONDS_FOR_BADGE:
        earned.append(HOURS_100)
    return earned
