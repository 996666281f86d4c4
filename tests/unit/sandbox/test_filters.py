"""Lambda event filter patterns (the subset the pollers implement)."""

from __future__ import annotations

import json

import pytest

from tapharness.sandbox.filters import (
    decode_json,
    matches,
    matches_any,
    parse_filter_criteria,
)

RECORD = {"data": {"event_type": "complete", "progress": 0.95, "user": {"id": "u-1"}, "tags": ["a", "b"]}}


def test_exact_string_value_matches():
    assert matches({"data": {"event_type": ["complete"]}}, RECORD)


def test_exact_string_value_rejects_other_values():
    assert not matches({"data": {"event_type": ["watch", "pause"]}}, RECORD)


def test_number_compares_by_value_not_type():
    assert matches({"data": {"progress": [0.95]}}, RECORD)


def test_prefix_matches_start_of_string():
    assert matches({"data": {"event_type": [{"prefix": "comp"}]}}, RECORD)


def test_numeric_range_matches_inside_bounds():
    assert matches({"data": {"progress": [{"numeric": [">=", 0.9, "<", 1]}]}}, RECORD)


def test_numeric_range_rejects_outside_bounds():
    assert not matches({"data": {"progress": [{"numeric": [">", 0.96]}]}}, RECORD)


def test_numeric_rule_rejects_a_string():
    assert not matches({"data": {"event_type": [{"numeric": [">", 0]}]}}, RECORD)


def test_exists_true_requires_the_field():
    assert matches({"data": {"user": {"id": [{"exists": True}]}}}, RECORD)


def test_exists_false_matches_a_missing_field():
    assert matches({"data": {"missing": [{"exists": False}]}}, RECORD)


def test_exists_false_rejects_a_present_field():
    assert not matches({"data": {"event_type": [{"exists": False}]}}, RECORD)


def test_list_value_matches_when_any_element_matches():
    assert matches({"data": {"tags": ["b"]}}, RECORD)


def test_anything_but_rejects_listed_values():
    assert not matches({"data": {"event_type": [{"anything-but": ["complete"]}]}}, RECORD)


def test_missing_nested_object_does_not_match():
    assert not matches({"body": {"event_type": ["complete"]}}, RECORD)


def test_no_filters_deliver_everything():
    assert matches_any([], {"anything": 1})


def test_any_of_several_filters_is_enough():
    patterns = [{"data": {"event_type": ["watch"]}}, {"data": {"event_type": ["complete"]}}]
    assert matches_any(patterns, RECORD)


def test_filter_criteria_patterns_are_parsed_from_json_strings():
    criteria = {"Filters": [{"Pattern": json.dumps({"data": {"event_type": ["complete"]}})}]}
    assert parse_filter_criteria(criteria) == [{"data": {"event_type": ["complete"]}}]


def test_unsupported_rule_is_an_error_not_a_silent_mismatch():
    with pytest.raises(ValueError, match="unsupported filter rule"):
        matches({"data": {"event_type": [{"wildcard": "c*"}]}}, RECORD)


def test_non_json_data_is_kept_as_text():
    assert decode_json(b"not json") == "not json"
