"""recommendations: ranking (pure, hypothesis) and the engine against moto (DynamoDB,
SageMaker runtime) and a real Redis, including both fallbacks."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import boto3
import pytest
import tap_common.aws
from hypothesis import given
from hypothesis import strategies as st
from moto.sagemakerruntime.models import sagemakerruntime_backends
from tap_common import dynamo

from tapharness.services import free_port

from .conftest import REGION, TABLES, load_package, relaxed
from .factories import stream_event

mod = load_package("recommendations", "handler", "ranking")
rk = mod.ranking
View = rk.View

ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
scores = st.dictionaries(ids, st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=40)


@relaxed
@given(scores, st.integers(min_value=0, max_value=20))
def test_top_n_returns_at_most_n_items(candidates: dict[str, float], n: int) -> None:
    assert len(rk.top_n(candidates, n)) == min(n, len(candidates))


@relaxed
@given(scores)
def test_top_n_is_ordered_by_score_then_id_with_consecutive_ranks(candidates: dict[str, float]) -> None:
    ranked = rk.top_n(candidates, 10)
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
    assert [(-r.score, r.content_id) for r in ranked] == sorted((-r.score, r.content_id) for r in ranked)


@relaxed
@given(scores, st.randoms(use_true_random=False))
def test_top_n_does_not_depend_on_input_order(candidates: dict[str, float], rnd: Any) -> None:
    items = list(candidates.items())
    rnd.shuffle(items)
    assert rk.top_n(dict(items), 10) == rk.top_n(candidates, 10)


@relaxed
@given(
    st.lists(st.tuples(ids, st.floats(allow_nan=True, allow_infinity=True)), max_size=30),
    scores,
)
def test_merged_list_is_bounded_unique_and_only_from_candidates(model: list[tuple[str, float]], fallback: dict[str, float]) -> None:
    merged = rk.merge_model_scores(model, fallback, set(fallback), 10)
    assert len(merged) <= 10
    assert len({r.content_id for r in merged}) == len(merged)
    assert {r.content_id for r in merged} <= set(fallback)
    assert all(math.isfinite(r.score) for r in merged)


@relaxed
@given(
    st.lists(st.tuples(ids, st.floats(allow_nan=True, allow_infinity=True)), max_size=30),
    st.dictionaries(ids, st.floats(min_value=0, max_value=1), max_size=40),
)
def test_merged_scores_are_relevances_in_rank_order(model: list[tuple[str, float]], fallback: dict[str, float]) -> None:
    merged = rk.merge_model_scores(model, fallback, set(fallback), 10)
    assert all(0 <= r.score <= 1 for r in merged), [r.score for r in merged]
    assert [r.score for r in merged] == sorted((r.score for r in merged), reverse=True)


def test_top_up_entries_score_below_every_model_entry_and_say_where_they_came_from() -> None:
    merged = rk.merge_model_scores([("c", 0.4)], {"a": 0.9, "b": 0.5, "c": 0.1}, {"a", "b", "c"}, 10)
    assert [(r.content_id, r.source) for r in merged] == [("c", "sagemaker"), ("a", "fallback"), ("b", "fallback")]
    assert merged[0].score == 0.4 and 0.4 > merged[1].score > merged[2].score


def test_model_scores_outside_zero_to_one_are_clipped() -> None:
    merged = rk.merge_model_scores([("a", 7.5), ("b", -2.0)], {"a": 0.1, "b": 0.1}, {"a", "b"}, 10)
    assert [(r.content_id, r.score) for r in merged] == [("a", 1.0), ("b", 0.0)]


@relaxed
@given(st.lists(st.tuples(ids, st.floats(min_value=0, max_value=1)), min_size=1, max_size=10),
       st.dictionaries(ids, st.lists(st.tuples(ids, st.floats(min_value=0, max_value=1)), max_size=5), max_size=10),
       st.dictionaries(ids, st.floats(min_value=0, max_value=1e9), max_size=20))
def test_fallback_scores_are_relevances_below_one(seed_list: list[tuple[str, float]],
                                                  neighbours: dict[str, list[tuple[str, float]]],
                                                  popularity: dict[str, float]) -> None:
    scores_ = rk.collaborative_scores([View(c, p) for c, p in seed_list], neighbours, popularity, set())
    assert all(0 <= s < 1 for s in scores_.values()), scores_


def test_dynamo_only_scores_run_from_one_down() -> None:
    scores_ = rk.dynamo_only_scores([View("half", 0.5)], [("p1", 3.0), ("p2", 2.0)], set(), 0.9)
    assert scores_ == {"half": 1.0, "p1": 2 / 3, "p2": 1 / 3}


def test_model_scored_items_rank_before_fallback_items() -> None:
    merged = rk.merge_model_scores([("c", 0.1)], {"a": 9.0, "b": 5.0, "c": 1.0}, {"a", "b", "c"}, 10)
    assert [r.content_id for r in merged] == ["c", "a", "b"]


def test_model_items_outside_the_candidates_are_ignored() -> None:
    merged = rk.merge_model_scores([("zzz", 1.0), ("a", 0.5)], {"a": 1.0}, {"a"}, 10)
    assert [r.content_id for r in merged] == ["a"]


def test_recent_seed_outweighs_an_older_one() -> None:
    seed_views = [View("new", 0.5), View("old", 0.5)]
    scores_ = rk.collaborative_scores(seed_views, {"new": [("x", 0.5)], "old": [("y", 0.5)]}, {}, set())
    assert scores_["x"] > scores_["y"]


def test_popularity_breaks_equal_similarity() -> None:
    scores_ = rk.collaborative_scores([View("s", 0.5)], {"s": [("x", 0.5), ("y", 0.5)]}, {"y": 100.0}, set())
    assert scores_["y"] > scores_["x"]


def test_excluded_candidates_get_no_score() -> None:
    scores_ = rk.collaborative_scores([View("s", 0.5)], {"s": [("x", 0.5), ("gone", 0.9)]}, {}, {"gone"})
    assert set(scores_) == {"x"}


def test_completed_and_expired_content_are_excluded() -> None:
    excluded = rk.excluded_ids([View("done", 0.95), View("half", 0.5)], ["expired"], 0.9)
    assert excluded == {"done", "expired"}


def test_seeds_keep_the_newest_progress_of_each_content() -> None:
    assert rk.seeds([View("a", 0.7), View("b", 0.1), View("a", 0.2)]) == [View("a", 0.7), View("b", 0.1)]


def test_dynamo_only_ranking_puts_continue_watching_before_the_previous_list() -> None:
    views = [View("half", 0.5), View("done", 1.0)]
    scores_ = rk.dynamo_only_scores(views, [("p1", 3.0), ("half", 2.0), ("done", 1.0)], {"done"}, 0.9)
    assert [r.content_id for r in rk.top_n(scores_, 10)] == ["half", "p1"]


@relaxed
@given(st.lists(st.tuples(ids, st.floats(min_value=0, max_value=1)), max_size=30), st.lists(st.tuples(ids, st.floats(0, 10)), max_size=30))
def test_dynamo_only_ranking_is_bounded_and_deterministic(views: list[tuple[str, float]], previous: list[tuple[str, float]]) -> None:
    view_objs = [View(c, p) for c, p in views]
    first = rk.top_n(rk.dynamo_only_scores(view_objs, previous, set(), 0.9), 10)
    assert first == rk.top_n(rk.dynamo_only_scores(view_objs, previous, set(), 0.9), 10)
    assert len(first) <= 10


USER = "user-1"


def put_activity(ddb: Any, user: str, content: str, progress: float, ts: str) -> None:
    item = {"user_id": user, "timestamp": f"{ts}#{content}", "content_id": content, "progress": progress}
    ddb.put_item(TableName=TABLES["ACTIVITY_TABLE"], Item=dynamo.serialize(item))


def summary_change(user: str = USER, progress: dict[str, float] | None = None) -> tuple[str, dict[str, Any]]:
    return "MODIFY", {"user_id": user, "timestamp": "SUMMARY", "progress_by_content": progress or {}}


@pytest.fixture
def engine(redis_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """user-1 watched `a` halfway and completed `b`; Redis holds neighbours, popularity
    and one expired id."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    put_activity(ddb, USER, "b", 1.0, "2026-11-23T05:00:00.000Z")
    put_activity(ddb, USER, "a", 0.5, "2026-11-23T06:00:00.000Z")
    redis_env.zadd("cf:a", {"x": 0.9, "y": 0.5, "b": 0.8, "old": 0.95})
    redis_env.zadd("cf:b", {"z": 0.7})
    redis_env.hset("content:x", mapping={"title": "X", "genre": "drama", "popularity": "10"})
    redis_env.sadd("expired:content", "old")
    for name, value in {
        "SAGEMAKER_ENDPOINT": "tap-test-recs",
        "RECOMMENDATION_TTL_HOURS": "24",
        "TTL_ATTRIBUTE": "expires_at",
        "TOP_N": "10",
        "FULL_COMPLETION_RATIO": "0.9",
    }.items():
        monkeypatch.setenv(name, value)
    return redis_env


def model_answers(*bodies: dict[str, Any]) -> None:
    backend = sagemakerruntime_backends["123456789012"][REGION]
    for body in bodies:
        backend.results_queue.append((json.dumps(body), "application/json", "AllTraffic", ""))


def stored(user: str = USER) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    item = ddb.get_item(TableName=TABLES["RECOMMENDATIONS_TABLE"], Key={"user_id": {"S": user}})["Item"]
    return dynamo.deserialize(item)


def listed(item: dict[str, Any]) -> list[str]:
    return [entry["content_id"] for entry in item["items"]]


def test_model_ranking_is_written_with_source_sagemaker(engine: Any, context: Any) -> None:
    model_answers({"recommendations": [{"content_id": "y", "score": 0.99}, {"content_id": "x", "score": 0.4}]})
    assert mod.handler.lambda_handler(stream_event([summary_change()]), context) == {"batchItemFailures": []}
    item = stored()
    assert (listed(item), item["source"]) == (["y", "x", "z"], "sagemaker")


def test_a_model_that_scores_no_candidate_leaves_a_fallback_list(engine: Any, context: Any) -> None:
    model_answers({"recommendations": [{"content_id": "unknown", "score": 0.9}]})
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    item = stored()
    assert (listed(item), item["source"]) == (["x", "z", "y"], "fallback")
    assert {entry["source"] for entry in item["items"]} == {"fallback"}


def test_completed_and_expired_content_is_never_recommended(engine: Any, context: Any) -> None:
    model_answers({"recommendations": [{"content_id": "old", "score": 1.0}, {"content_id": "b", "score": 1.0}]})
    mod.handler.lambda_handler(stream_event([summary_change(progress={"b": 1.0, "a": 0.5})]), context)
    assert not {"old", "b"} & set(listed(stored()))


def test_recommendations_expire_24_hours_after_generation(engine: Any, context: Any) -> None:
    before = time.time()
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    assert before + 24 * 3600 - 1 <= stored()["expires_at"] <= time.time() + 24 * 3600 + 1


def test_unusable_model_answer_falls_back_to_the_redis_ranking(engine: Any, context: Any) -> None:
    model_answers({"unexpected": True})
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    item = stored()
    assert (listed(item), item["source"]) == (["x", "z", "y"], "fallback")


def test_sagemaker_error_falls_back_to_the_redis_ranking(engine: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("sagemaker-runtime")

    def unavailable(**kwargs: Any) -> Any:
        raise client.exceptions.ServiceUnavailable({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "InvokeEndpoint")

    monkeypatch.setattr(client, "invoke_endpoint", unavailable)
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    assert stored()["source"] == "fallback"


def test_redis_down_still_writes_a_dynamodb_only_ranking(engine: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    previous = {"user_id": USER, "items": [{"content_id": "p", "score": 1.0, "rank": 1}], "source": "sagemaker"}
    ddb.put_item(TableName=TABLES["RECOMMENDATIONS_TABLE"], Item=dynamo.serialize(previous))
    monkeypatch.setenv("REDIS_PORT", str(free_port()))  # nothing listens there
    assert mod.handler.lambda_handler(stream_event([summary_change()]), context) == {"batchItemFailures": []}
    item = stored()
    assert (listed(item), item["source"]) == (["a", "p"], "fallback")


def test_written_list_is_cached_in_redis_with_a_ttl(engine: Any, context: Any) -> None:
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    assert engine.zrevrange(f"recs:{USER}", 0, -1) == ["x", "z", "y"]
    assert 0 < engine.ttl(f"recs:{USER}") <= 24 * 3600


def test_list_never_exceeds_top_n(engine: Any, context: Any) -> None:
    engine.zadd("cf:a", {f"c{i}": 0.01 * i for i in range(40)})
    mod.handler.lambda_handler(stream_event([summary_change()]), context)
    assert len(stored()["items"]) == 10


def test_event_item_changes_trigger_nothing(engine: Any, context: Any) -> None:
    change = ("INSERT", {"user_id": USER, "timestamp": "2026-11-23T06:00:00.000Z#e1", "content_id": "a"})
    mod.handler.lambda_handler(stream_event([change]), context)
    ddb = boto3.client("dynamodb", region_name=REGION)
    assert "Item" not in ddb.get_item(TableName=TABLES["RECOMMENDATIONS_TABLE"], Key={"user_id": {"S": USER}})


def test_failed_write_reports_that_users_records(engine: Any, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = tap_common.aws.client("dynamodb")

    def throttled(**kwargs: Any) -> Any:
        raise client.exceptions.ProvisionedThroughputExceededException(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "BatchWriteItem"
        )

    monkeypatch.setattr(client, "batch_write_item", throttled)
    event = stream_event([summary_change(), summary_change()])
    response = mod.handler.lambda_handler(event, context)
    expected = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected

