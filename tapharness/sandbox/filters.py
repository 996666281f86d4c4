"""Lambda event filtering (FilterCriteria) for the sandbox's pollers.

A mapping's ``FilterCriteria.Filters`` holds JSON patterns; a record is delivered when any
pattern matches it (no filters: every record). Patterns are matched against a *view* of the
record the pollers build as Lambda does: Kinesis ``data`` and SQS ``body`` are decoded JSON
when they parse as JSON; DynamoDB records are matched as they are.

Supported (the subset of the pattern syntax Lambda documents that matters here):
exact values (strings, numbers, booleans, null), ``prefix``, ``suffix``,
``equals-ignore-case``, ``anything-but`` (a value, a list, or ``{"prefix": ...}``),
``numeric`` (``=``, ``<``, ``<=``, ``>``, ``>=``, combined as a range) and ``exists``.
Nested objects match field by field; a list in the record matches when any element does.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from typing import Any

_MISSING = object()
_NUMERIC_OPS = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def parse_filter_criteria(criteria: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The patterns of a mapping's FilterCriteria (``{"Filters": [{"Pattern": "<json>"}]}``)."""
    if not criteria:
        return []
    patterns = []
    for item in criteria.get("Filters") or []:
        pattern = item.get("Pattern")
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
    return patterns


def matches_any(patterns: Iterable[dict[str, Any]], record: dict[str, Any]) -> bool:
    """Lambda's rule: no patterns means deliver everything; otherwise any pattern must match."""
    patterns = list(patterns)
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern: dict[str, Any], record: Any) -> bool:
    """Whether every field of ``pattern`` matches ``record``."""
    if not isinstance(pattern, dict):
        raise TypeError(f"a filter pattern must be an object, got {pattern!r}")
    for key, expected in pattern.items():
        value = record.get(key, _MISSING) if isinstance(record, dict) else _MISSING
        if isinstance(expected, dict):
            if value is _MISSING or not _match_nested(expected, value):
                return False
        elif isinstance(expected, list):
            if not _match_rules(expected, value):
                return False
        else:
            raise TypeError(f"pattern field {key!r} must be an object or a list of rules")
    return True


def _match_nested(pattern: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(item, dict) and matches(pattern, item) for item in value)
    return isinstance(value, dict) and matches(pattern, value)


def _match_rules(rules: list[Any], value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if bool(rule["exists"]) == (value is not _MISSING):
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(_match_rule(rule, candidate) for candidate in candidates):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _match_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        if _is_number(rule) and _is_number(value):
            return float(rule) == float(value)
        return type(rule) is type(value) and rule == value
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(rule["prefix"])
    if "suffix" in rule:
        return isinstance(value, str) and value.endswith(rule["suffix"])
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        if isinstance(excluded, dict):
            return not _match_rule(excluded, value)
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return not any(_match_rule(item, value) for item in excluded)
    if "numeric" in rule:
        return _is_number(value) and _match_numeric(rule["numeric"], float(value))
    raise ValueError(f"unsupported filter rule {rule!r}")


def _match_numeric(spec: list[Any], value: float) -> bool:
    if len(spec) % 2:
        raise ValueError(f"numeric rule needs operator/value pairs, got {spec!r}")
    for op, bound in zip(spec[::2], spec[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise ValueError(f"unsupported numeric operator {op!r}")
        if not _NUMERIC_OPS[op](value, float(bound)):
            return False
    return True


def decode_json(text: str | bytes) -> Any:
    """The JSON value of ``text``, or the text itself when it is not JSON (as Lambda filters see it)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text.decode(errors="replace") if isinstance(text, bytes) else text
