"""Fixtures of the hotel-booking integration suite: the deployed stack (sandbox or account), its
API, and helpers that arrange inventory the way onboarding loads it (contract.md, "Items")."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tapharness.deployed import Target

# The booking channel and onboarding, as the benchmarks use them too.
_spec = importlib.util.spec_from_file_location("hotel_channel", Path(__file__).resolve().parents[2] / "tools" / "channel.py")
assert _spec is not None and _spec.loader is not None
channel = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = channel
_spec.loader.exec_module(channel)
BookingApi, Inventory = channel.BookingApi, channel.Inventory


@pytest.fixture(scope="session")
def api(target: Target) -> BookingApi:
    return BookingApi(target)


@pytest.fixture(scope="session")
def inventory(target: Target) -> Inventory:
    return Inventory(target)


@pytest.fixture
def stay() -> Callable[[int], str]:
    return lambda days=30: (datetime.now(UTC).date() + timedelta(days=days)).isoformat()
