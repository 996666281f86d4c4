"""Configuration from the environment variables the stack sets (docs/contract.md).

Values are read at call time, never cached, so a warm container and the tests see the
same environment the function was configured with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed."""


def require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def optional(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _parsed(name: str, default: T | None, cast: Callable[[str], T], kind: str) -> T:
    raw = os.environ.get(name)
    if not raw:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set")
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} is not {kind}: {raw!r}") from exc


def integer(name: str, default: int | None = None) -> int:
    return _parsed(name, default, int, "an integer")


def number(name: str, default: float | None = None) -> float:
    return _parsed(name, default, float, "a number")


def flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if not raw:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def full_completion_ratio() -> float:
    """Progress from which a 'complete' event counts as a full completion (contract: 0.9)."""
    return number("FULL_COMPLETION_RATIO", 0.9)
