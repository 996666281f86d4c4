"""Garbage collection for a process whose heap only grows: no stop-the-world full collections.

The sandbox keeps every item, record and message it was sent (moto's models), millions of
objects after a load run. CPython's full (generation 2) collection walks all of them with the
GIL held: measured under load, one took 1.05 s, and every API request in flight waited for it
(the p99 of the API was that pause). ``YoungOnlyCollector`` moves the objects that have
survived a while into the permanent generation (``gc.freeze``) every ``every_s`` seconds, so a
collection only ever walks what was allocated since; reference counting still frees frozen
objects as soon as they are unreferenced. What it gives up: a reference cycle that was alive
at a freeze and dies later is not reclaimed (per-request cycles are born and die between two
freezes, so this is rare and small). It also records each collection's pause.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any


class YoungOnlyCollector:
    """Freezes the survivors every ``every_s`` seconds and measures every collection's pause."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.collections = 0
        self.longest_pause_s = 0.0
        self.total_pause_s = 0.0
        self.freezes = 0
        self._started_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_at = time.perf_counter()
            return
        pause = time.perf_counter() - self._started_at
        self.collections += 1
        self.total_pause_s += pause
        self.longest_pause_s = max(self.longest_pause_s, pause)

    def _freeze_periodically(self) -> None:
        while not self._stop.wait(self.every_s):
            gc.freeze()
            self.freezes += 1

    def start(self) -> None:
        gc.callbacks.append(self._on_collection)
        gc.freeze()
        self._thread = threading.Thread(target=self._freeze_periodically, name="gc-freeze", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        gc.unfreeze()

    def snapshot(self) -> dict[str, Any]:
        return {"collections": self.collections, "longest_pause_s": round(self.longest_pause_s, 6),
                "total_pause_s": round(self.total_pause_s, 6), "freezes": self.freezes,
                "frozen_objects": gc.get_freeze_count()}
