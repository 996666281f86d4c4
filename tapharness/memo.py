"""Answers kept across test runs, keyed by the content hash of everything they depend on.

A plan of an unchanged stack is the same plan: ``memo.get(kind, key, compute)`` returns the JSON
``compute()`` gave for ``key`` on any earlier run of this machine (``$TAPSTACK_CACHE/memo``), and
computes it, one process at a time, when there is none. ``TAPSTACK_MEMO=off`` (a cold run) keeps
answers for the current test run only: its xdist workers still share them. Entries unread for
``KEEP_DAYS`` are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tapharness import toolchain

KEEP_DAYS = 7
ROOT = toolchain.CACHE / "memo"


def _run_scope() -> str:
    """'' when answers outlive the run; else the run's id (shared by its xdist workers)."""
    if os.environ.get("TAPSTACK_MEMO", "on") != "off":
        return ""
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"


def digest(parts: Iterable[str | bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()[:32]


def files_digest(root: Path, paths: Iterable[Path]) -> str:
    """The hash of the files' paths (relative to ``root``) and contents."""
    return digest(part for path in sorted(paths) for part in (str(path.relative_to(root)), path.read_bytes()))


def _prune(directory: Path) -> None:
    horizon = time.time() - KEEP_DAYS * 86_400
    for entry in directory.glob("*/*"):
        try:
            if entry.stat().st_mtime < horizon:
                entry.unlink()
        except FileNotFoundError:
            pass


def get(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    """The JSON answer of ``kind`` for ``key``: from an earlier run, or ``compute()`` (then kept)."""
    scope = _run_scope()
    if scope:
        key = digest([key, scope])
    directory = ROOT / kind
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key}.json"
    with (directory / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            os.utime(target)
            return json.loads(target.read_text())
        value = compute()
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(target)
    _prune(ROOT)
    return value
