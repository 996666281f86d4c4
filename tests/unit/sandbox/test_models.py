"""The sandbox's SageMaker endpoints: a real implicit-feedback model trained on the stack's rows,
answering InvokeEndpoint with the contract's body, and AWS's errors for what it cannot answer."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tapharness.sandbox import models
from tapharness.sandbox.adapter import EndpointSpec

# Two taste clusters: each a-viewer finishes five of the ten a-titles, each b-viewer five b-titles.
_rng = random.Random(3)
ROWS = [(f"{group}-viewer-{v}", f"{group}{t}", 1) for group in "ab" for v in range(40) for t in _rng.sample(range(10), 5)]
SPEC = EndpointSpec("sagemaker_endpoint_arn", "SELECT user_id, content_id, weight FROM viewings", retrain_after_s=60)


def test_a_viewer_gets_titles_of_their_own_taste_first() -> None:
    model = models.ImplicitRecommender(ROWS)
    scores = model.score(["a1", "a2"], ["a3", "a4", "b3", "b4"])
    assert min(scores["a3"], scores["a4"]) > max(scores["b3"], scores["b4"]), scores


def test_scores_are_relevances_of_known_candidates_outside_the_history() -> None:
    scores = models.ImplicitRecommender(ROWS).score(["a1"], ["a1", "a2", "b2", "never-seen"])
    assert set(scores) == {"a2", "b2"}
    assert all(0 <= s <= 1 for s in scores.values())


def test_a_history_the_model_never_saw_scores_nothing() -> None:
    assert models.ImplicitRecommender(ROWS).score(["unknown"], ["a1"]) == {}


def test_the_same_rows_train_the_same_model() -> None:
    assert models.ImplicitRecommender(ROWS).score(["a1"], ["a2", "b2"]) == \
        models.ImplicitRecommender(list(reversed(ROWS))).score(["a1"], ["a2", "b2"])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def endpoint(rows: Any = ROWS, clock: Clock | None = None) -> models.ModelEndpoint:
    def run_sql(sql: str) -> Any:
        if isinstance(rows, Exception):
            raise rows
        return rows
    return models.ModelEndpoint(SPEC, run_sql, clock or Clock())


def test_an_answer_lists_each_scored_candidate_best_first() -> None:
    body = json.dumps({"user_id": "u", "recent_content_ids": ["a1", "a2"], "candidates": ["b3", "a3"]}).encode()
    answer = json.loads(endpoint().invoke(body))
    assert [entry["content_id"] for entry in answer["recommendations"]] == ["a3", "b3"]
    assert set(answer["recommendations"][0]) == {"content_id", "score"}


@pytest.mark.parametrize("body", [b"not json", b'{"candidates": ["a1"]}', b'{"recent_content_ids": 5, "candidates": []}'])
def test_a_body_the_model_cannot_read_is_a_model_error(body: bytes) -> None:
    with pytest.raises(models.ModelError):
        endpoint().invoke(body)


def test_training_data_the_query_cannot_produce_is_a_model_error() -> None:
    with pytest.raises(models.ModelError, match="relation"):
        endpoint(RuntimeError('relation "viewings" does not exist')).invoke(b'{"recent_content_ids": [], "candidates": []}')


def test_the_model_is_retrained_once_it_is_older_than_the_spec_allows() -> None:
    clock = Clock()
    served = endpoint(clock=clock)
    body = b'{"recent_content_ids": ["a1"], "candidates": ["a2"]}'
    served.invoke(body)
    clock.now = 59
    served.invoke(body)
    assert served.status()["trainings"] == 1
    clock.now = 60
    served.invoke(body)
    assert served.status() == {"invocations": 3, "trainings": 2, "items": 20}


# The training rows as the sandbox's PostgreSQL gives them back.
VALUES_SQL = "SELECT * FROM (VALUES {}) AS viewings(user_id, content_id, weight)".format(
    ", ".join(f"('{user}', '{content}', {weight})" for user, content, weight in ROWS))


@pytest.fixture(scope="module")
def served_endpoint(sandbox: Any) -> str:
    """An endpoint of the served sandbox trained on ROWS through its database."""
    sandbox.control("POST", "models", {"Tap-Test-Recs": {"endpoint_output": "sagemaker_endpoint_arn",
                                                         "training_sql": VALUES_SQL}})
    return "tap-test-recs"


def test_invoke_endpoint_answers_from_the_registered_model(aws: Any, served_endpoint: str) -> None:
    answer = aws("sagemaker-runtime").invoke_endpoint(
        EndpointName=served_endpoint, ContentType="application/json",
        Body=json.dumps({"recent_content_ids": ["b1"], "candidates": ["b2", "a2"]}))
    assert [e["content_id"] for e in json.loads(answer["Body"].read())["recommendations"]] == ["b2", "a2"]


def test_invoke_endpoint_of_an_unknown_endpoint_is_a_validation_error(aws: Any) -> None:
    with pytest.raises(ClientError, match="ValidationError.*Endpoint nope of account"):
        aws("sagemaker-runtime").invoke_endpoint(EndpointName="nope", ContentType="application/json", Body=b"{}")


def test_invoke_endpoint_with_an_unreadable_body_is_a_model_error(aws: Any, served_endpoint: str) -> None:
    with pytest.raises(ClientError, match="ModelError") as caught:
        aws("sagemaker-runtime").invoke_endpoint(EndpointName=served_endpoint, ContentType="application/json",
                                                        Body=b"not json")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
