"""Configuration from the environment variables the stack sets (docs/contract.md).

Values are read at call time, never cached, so a warm container and the tests see the
same environment the function was configured with.
"""

from __future__ import annotations

import os


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed."""


def require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"environment variable {name} is not set")
    return value


def optional(name: str, default: str) -> str:
    return os.environ.get(name) or default


def integer(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if not raw:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set")
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} is not an integer: {raw!r}") from exc


def number(name: str, default: float | None = None) -> float:
    raw = os.environ.get(name)
    if not raw:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set")
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} is not a number: {raw!r}") from exc


def flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if not raw:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def full_completion_ratio() -> float:
    """Progress from which a 'complete' event counts as a full completion (contract: 0.9)."""
    return number("FULL_COMPLETION_RATIO", 0.9)
