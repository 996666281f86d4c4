"""Compare the plans of two environments of one stack: which attributes differ, and where.

Environment names inside values (``tap-dev-x`` vs ``tap-prod-x``) are not differences; every
stack's parity tests name the attributes allowed to differ as (address glob, path glob) pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from typing import Any

from tapharness.plan import PlanSummary

ENV_WORD = re.compile(r"(?<![A-Za-z0-9])(dev|staging|prod)(?![A-Za-z0-9])")


def normalize(value: Any) -> Any:
    if isinstance(value, str):
        return ENV_WORD.sub("<env>", value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Attribute paths (``a.0.b``) where two values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{path}.{index}")
    elif a != b:
        yield path


def lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def allowed(address: str, path: str, allow_list: Iterable[tuple[str, str]]) -> bool:
    return any(fnmatchcase(address, a) and fnmatchcase(path, p) for a, p in allow_list)


def disallowed_differences(dev: PlanSummary, other: PlanSummary, allow_list: Iterable[tuple[str, str]]) -> list[str]:
    """One line per attribute that differs between the two plans outside the allow-list."""
    pairs = list(allow_list)
    return [
        f"{address}: {path} (dev={lookup(dev.values[address], path)!r}, "
        f"{other.env}={lookup(other.values[address], path)!r})"
        for address in sorted(set(dev.values) & set(other.values))
        for path in differences(normalize(dev.values[address]), normalize(other.values[address]))
        if not allowed(address, path, pairs)
    ]
