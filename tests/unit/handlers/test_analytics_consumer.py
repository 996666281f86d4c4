"""analytics_consumer: per-content aggregation (pure) and the content_stats upsert in
one transaction per batch against a real PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tap_common.db

from tapharness.services import free_port

from .conftest import load_package
from .factories import completion_body, sqs_event, viewing

mod = load_package("analytics_consumer", "handler", "aggregate")
agg = mod.aggregate
RETENTION_DAYS = 28


def message(n: int, content: str = "c1", ratio: float = 1.0, user: str = "user-1") -> tuple[str, dict[str, Any]]:
    return user, completion_body(viewing(n, user=user, content=content, event_type="complete"), ratio)


def test_totals_count_views_full_completions_and_ratio_sum() -> None:
    completions = [agg.Completion("e1", "c1", 1.0, "u1"), agg.Completion("e2", "c1", 0.5, "u1"), agg.Completion("e3", "c2", 0.95, "u1")]
    totals = agg.totals_by_content(completions, 0.9)
    assert totals == {"c1": agg.ContentTotals(2, 1, 1.5), "c2": agg.ContentTotals(1, 1, 0.95)}


def test_totals_count_an_event_id_once() -> None:
    totals = agg.totals_by_content([agg.Completion("e1", "c1", 1.0, "u1"), agg.Completion("e1", "c1", 1.0, "u1")], 0.9)
    assert totals["c1"].views == 1


def test_totals_are_keyed_in_sorted_order() -> None:
    totals = agg.totals_by_content([agg.Completion("e1", "zz", 1.0, "u1"), agg.Completion("e2", "aa", 1.0, "u1")], 0.9)
    assert list(totals) == ["aa", "zz"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps(viewing(1, event_type="complete")),
        json.dumps(completion_body(viewing(1, event_type="watch"), 1.0)),
        json.dumps(completion_body(viewing(1, event_type="complete"), 1.5)),
        json.dumps(completion_body(viewing(1, event_type="complete"), "0.5")),
    ],
)
def test_invalid_message_is_rejected(body: str) -> None:
    with pytest.raises(ValueError):
        agg.parse_message(body)


@pytest.fixture
def db(postgres_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FULL_COMPLETION_RATIO", "0.9")
    monkeypatch.setenv("PROCESSED_EVENTS_RETENTION_DAYS", str(RETENTION_DAYS))
    return postgres_env


def stats(conn: Any) -> dict[str, tuple[int, int, float, float]]:
    rows = conn.run("SELECT content_id, view_count, full_completions, completion_ratio_sum, completion_rate FROM content_stats")
    return {row[0]: (row[1], row[2], round(row[3], 6), round(row[4], 6)) for row in rows}


def test_batch_updates_view_counts_and_completion_rate(db: Any, context: Any) -> None:
    event = sqs_event([message(1, ratio=1.0), message(2, ratio=0.5, user="user-2"), message(3, content="c2", ratio=0.95)])
    assert mod.handler.lambda_handler(event, context) == {"batchItemFailures": []}
    assert stats(db) == {"c1": (2, 1, 1.5, 0.5), "c2": (1, 1, 0.95, 1.0)}


def test_later_batches_accumulate(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1, ratio=1.0)]), context)
    mod.handler.lambda_handler(sqs_event([message(2, ratio=0.2), message(3, ratio=0.3, user="user-3")]), context)
    assert stats(db)["c1"] == (3, 1, 1.5, round(1 / 3, 6))


def test_same_batch_twice_leaves_the_same_stats(db: Any, context: Any) -> None:
    event = sqs_event([message(1), message(2, content="c2", ratio=0.4)])
    mod.handler.lambda_handler(event, context)
    first = stats(db)
    assert mod.handler.lambda_handler(event, context) == {"batchItemFailures": []}
    assert stats(db) == first


def test_processed_event_ids_are_recorded(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1), message(2)]), context)
    assert sorted(row[0] for row in db.run("SELECT event_id FROM processed_events")) == [viewing(1)["event_id"], viewing(2)["event_id"]]


def processed_at(db: Any, event_id: str, days_ago: float) -> None:
    db.run("INSERT INTO processed_events (event_id, processed_at) VALUES (:e, now() - make_interval(secs => :s))",
           e=event_id, s=days_ago * 86400)


def test_ids_past_the_retention_are_pruned_by_the_next_batch(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1)]), context)
    processed_at(db, "old", RETENTION_DAYS + 1)
    processed_at(db, "recent", RETENTION_DAYS - 1)
    mod.handler.lambda_handler(sqs_event([message(2)]), context)
    assert sorted(row[0] for row in db.run("SELECT event_id FROM processed_events")) == sorted(
        ["recent", viewing(1)["event_id"], viewing(2)["event_id"]])


def test_a_batch_prunes_a_bounded_number_of_ids(db: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mod.handler.lambda_handler(sqs_event([message(1)]), context)
    monkeypatch.setattr(mod.handler, "PRUNE_PER_BATCH", 3)
    for n in range(5):
        processed_at(db, f"old-{n}", RETENTION_DAYS + 1 + n)
    mod.handler.lambda_handler(sqs_event([message(2)]), context)
    assert sorted(row[0] for row in db.run("SELECT event_id FROM processed_events WHERE event_id LIKE 'old-%'")) == [
        "old-0", "old-1"], "the oldest go first"


def test_a_redelivery_within_the_retention_still_counts_once(db: Any, context: Any) -> None:
    event = sqs_event([message(1)])
    mod.handler.lambda_handler(event, context)
    db.run("UPDATE processed_events SET processed_at = now() - make_interval(days => :d)", d=RETENTION_DAYS - 1)
    mod.handler.lambda_handler(event, context)
    assert stats(db)["c1"][0] == 1


def test_poison_message_and_later_ones_of_its_group_are_reported(db: Any, context: Any) -> None:
    event = sqs_event([message(1), ("user-1", "garbage"), message(3), message(4, user="user-2")])
    response = mod.handler.lambda_handler(event, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert stats(db)["c1"][0] == 2


def test_unreachable_database_reports_every_message(db: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PORT", str(free_port()))
    response = mod.handler.lambda_handler(sqs_event([message(1), message(2)]), context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_schema_creation_is_idempotent_across_cold_starts(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1)]), context)
    tap_common.db._schemas_ready.clear()
    assert mod.handler.lambda_handler(sqs_event([message(2)]), context) == {"batchItemFailures": []}
    assert stats(db)["c1"][0] == 2


def test_connection_dropped_between_invocations_is_replaced(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1)]), context)
    db.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'unit'")
    assert mod.handler.lambda_handler(sqs_event([message(2)]), context) == {"batchItemFailures": []}
    assert stats(db)["c1"][0] == 2


def test_failed_statement_rolls_back_the_whole_batch(db: Any, context: Any) -> None:
    mod.handler.lambda_handler(sqs_event([message(1)]), context)
    db.run("ALTER TABLE content_stats ADD CONSTRAINT small CHECK (view_count < 2)")
    response = mod.handler.lambda_handler(sqs_event([message(2), message(3, content="c2")]), context)
    assert len(response["batchItemFailures"]) == 2
    assert db.run("SELECT count(*) FROM processed_events")[0][0] == 1


def viewer_titles(conn: Any) -> dict[tuple[str, str], int]:
    return {(row[0], row[1]): row[2] for row in conn.run("SELECT user_id, content_id, full_completions FROM viewer_titles")}


def test_full_completions_record_who_finished_which_title(db: Any, context: Any) -> None:
    event = sqs_event([message(1, ratio=1.0), message(2, content="c2", ratio=0.5), message(3, content="c3", user="user-2")])
    mod.handler.lambda_handler(event, context)
    assert viewer_titles(db) == {("user-1", "c1"): 1, ("user-2", "c3"): 1}, "a partial completion is not co-viewing"


def test_a_redelivered_completion_is_not_a_second_viewing(db: Any, context: Any) -> None:
    event = sqs_event([message(1)])
    mod.handler.lambda_handler(event, context)
    mod.handler.lambda_handler(event, context)
    mod.handler.lambda_handler(sqs_event([message(2)]), context)
    assert viewer_titles(db) == {("user-1", "c1"): 2}
