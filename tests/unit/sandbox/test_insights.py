"""The sandbox's Logs Insights: the query language's commands over JSON and text log events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tapharness.sandbox.insights import LogRecord, MalformedQuery, run

START_MS = 1_796_190_000_000


def records(*messages: dict[str, Any] | str, group: str = "/aws/lambda/f") -> list[LogRecord]:
    return [LogRecord(START_MS + i * 1000, m if isinstance(m, str) else json.dumps(m), group, "stream", "123")
            for i, m in enumerate(messages)]


EVENTS = records(
    {"level": "INFO", "user_id": "u1", "content_id": "c1", "event_type": "watch"},
    {"level": "INFO", "user_id": "u2", "content_id": "c1", "event_type": "watch"},
    {"level": "INFO", "user_id": "u1", "content_id": "c1", "event_type": "watch"},
    {"level": "INFO", "user_id": "u1", "content_id": "c2", "event_type": "complete"},
    {"level": "ERROR", "message": "boom", "service": "activity_consumer"},
    "Task timed out after 3.00 seconds",
)


def test_stats_count_and_count_distinct_by_fields() -> None:
    rows = run("filter ispresent(content_id) | stats count(*) as events, count_distinct(user_id) as viewers "
               "by content_id, event_type | sort events desc", EVENTS)
    assert rows == [{"content_id": "c1", "event_type": "watch", "events": 3, "viewers": 2},
                    {"content_id": "c2", "event_type": "complete", "events": 1, "viewers": 1}]


def test_filter_combines_comparisons_or_and_regex_like() -> None:
    rows = run('filter level = "ERROR" or @message like /Task timed out/ | stats count(*) as errors', EVENTS)
    assert rows == [{"errors": 2}]


def test_numbers_compare_numerically_even_when_logged_as_strings() -> None:
    logs = records({"status": "404"}, {"status": "200"}, {"status": "502"})
    assert run("filter status >= 400 | stats count(*) as n", logs) == [{"n": 2}]


def test_nested_json_fields_are_addressed_with_dots() -> None:
    logs = records(*({"type": "platform.report", "record": {"metrics": {"durationMs": ms}}} for ms in (10, 20, 30, 40)))
    rows = run('filter type = "platform.report" | stats avg(record.metrics.durationMs) as avg_ms, '
               "pct(record.metrics.durationMs, 50) as p50, max(record.metrics.durationMs) as max_ms", logs)
    assert rows == [{"avg_ms": 25.0, "p50": 20.0, "max_ms": 40.0}]


def test_bin_groups_by_time_window() -> None:
    logs = [LogRecord(START_MS + offset_s * 1000, "{}", "/g", "s", "1") for offset_s in (0, 10, 400)]
    rows = run("stats count(*) as n by bin(5m) | sort n desc", logs)
    assert [row["n"] for row in rows] == [2, 1]


def test_fields_selects_what_each_row_shows_and_sort_orders_by_several_keys() -> None:
    rows = run("fields user_id, content_id | filter ispresent(user_id) | sort user_id asc, content_id desc", EVENTS)
    assert rows == [{"user_id": "u1", "content_id": "c2"}, {"user_id": "u1", "content_id": "c1"},
                    {"user_id": "u1", "content_id": "c1"}, {"user_id": "u2", "content_id": "c1"}]


def test_limit_bounds_the_rows() -> None:
    assert len(run("filter ispresent(user_id) | limit 2", EVENTS)) == 2


def test_without_fields_or_stats_rows_carry_timestamp_and_message_newest_first() -> None:
    [row] = run("filter @message like /timed out/", EVENTS)
    assert row == {"@timestamp": "2026-12-02 05:40:05.000", "@message": "Task timed out after 3.00 seconds"}


def test_log_group_is_the_account_and_group_name() -> None:
    assert run("stats count(*) as n by @log", EVENTS) == [{"@log": "123:/aws/lambda/f", "n": 6}]


def test_in_list_and_not() -> None:
    assert run('filter event_type in ["complete"] | stats count(*) as n', EVENTS) == [{"n": 1}]
    assert run('filter ispresent(event_type) and not event_type = "watch" | stats count(*) as n', EVENTS) == [{"n": 1}]


@pytest.mark.parametrize("query", ['parse @message "* *" as a, b', "dedup user_id", "stats earliest(x)",
                                   "filter strcontains(x, 'y')", "filter (level = 1", "sort"])
def test_what_the_engine_does_not_run_is_refused_not_answered_wrongly(query: str) -> None:
    with pytest.raises(MalformedQuery):
        run(query, EVENTS)


def test_events_without_a_grouping_field_group_together_as_null() -> None:
    rows = run('filter level = "ERROR" or @message like /timed out/ | stats count(*) as n by service', EVENTS)
    assert sorted(rows, key=len) == [{"n": 1}, {"service": "activity_consumer", "n": 1}]


def test_bin_accepts_the_documented_unit_spellings() -> None:
    minutes = run("stats count(*) as n by bin(1min) as window", EVENTS)
    assert minutes == run("stats count(*) as n by bin(60s) as window", EVENTS)
    assert minutes == [{"window": "2026-12-02 05:40:00.000", "n": 6}]
