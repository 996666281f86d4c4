"""The sandbox's garbage collection: full collections never walk the long-lived heap."""

from __future__ import annotations

import gc
import time

import pytest

from tapharness.sandbox.gcpolicy import YoungOnlyCollector


@pytest.fixture
def collector():
    started = YoungOnlyCollector(every_s=0.05)
    yield started
    started.stop()


def test_objects_alive_at_start_are_left_out_of_every_collection(collector):
    kept = [{"item": i} for i in range(50_000)]
    collector.start()
    assert gc.get_freeze_count() >= len(kept)
    assert not any(tracked is kept for tracked in gc.get_objects())


def test_survivors_are_frozen_periodically(collector):
    collector.start()
    later = [[i] for i in range(1_000)]
    freezes_before = collector.freezes
    deadline = time.monotonic() + 5
    while collector.freezes <= freezes_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert collector.freezes > freezes_before
    assert not any(tracked is later for tracked in gc.get_objects())


def test_every_collection_is_timed(collector):
    collector.start()
    gc.collect()
    snapshot = collector.snapshot()
    assert snapshot["collections"] >= 1
    assert snapshot["longest_pause_s"] > 0
    assert snapshot["total_pause_s"] >= snapshot["longest_pause_s"] - 1e-4


def test_stop_unfreezes_and_stops_timing(collector):
    collector.start()
    collector.stop()
    assert gc.get_freeze_count() == 0
    before = collector.collections
    gc.collect()
    assert collector.collections == before
