"""Milestone rules (pure): badges a user has earned, read from the user's SUMMARY item."""

from __future__ import annotations

from tap_common.milestones import (
    COMPLETED_VIDEOS_FOR_BADGE,
    HOURS_100,
    VIDEOS_10,
    WATCH_SECONDS_FOR_BADGE,
)


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
