"""SageMaker real-time endpoints served by a real model, trained on the sandbox's own data.

moto answers InvokeEndpoint for any name with a canned body, which proves nothing. Here an
endpoint the stack's ``sandbox.yaml`` declares is served by an implicit-feedback matrix
factorisation (alternating least squares, Hu, Koren and Volinsky 2008, from the ``implicit``
library) trained on rows ``(user, item, weight)`` that an SQL query reads from the stack's own
database; any other name is ``ValidationError: Endpoint ... not found``, as on AWS.

    model_endpoints:
      - endpoint_output: sagemaker_endpoint_arn   # the output whose ARN names the endpoint
        training_sql: SELECT user_id, content_id, full_completions FROM viewer_titles
        request: {history: recent_content_ids, candidates: candidates}
        response: {list: recommendations, item: content_id, score: score}
        retrain_after_s: 30

A request names the viewer's recent items and the candidates to score; the viewer's factors are
solved from that history (fold-in), so viewers the model never saw are scored too. Scores are
the model's predicted preference, clipped to [0, 1]. The model is retrained at the first call
after ``retrain_after_s``. A body the model cannot read, or training data the query cannot
produce, answers ``ModelError`` (HTTP 424) as a failing container does on SageMaker.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from scipy import sparse
from threadpoolctl import threadpool_limits

from tapharness.sandbox.adapter import EndpointSpec

Rows = Sequence[Sequence[Any]]

FACTORS = 32
ITERATIONS = 20
REGULARIZATION = 0.05
CONFIDENCE = 20.0  # c = 1 + CONFIDENCE * weight (the paper's alpha)


class ModelError(Exception):
    """The model cannot answer this request (SageMaker's ModelError, HTTP 424)."""


class ImplicitRecommender:
    """ALS over the user × item confidence matrix; deterministic for the same rows."""

    def __init__(self, rows: Rows, factors: int = FACTORS, iterations: int = ITERATIONS) -> None:
        weights: dict[tuple[str, str], float] = {}
        for user, item, weight in rows:
            key = (str(user), str(item))
            weights[key] = weights.get(key, 0.0) + max(float(weight), 0.0)
        users = sorted({user for user, _ in weights})
        self.items = sorted({item for _, item in weights})
        self.item_index = {item: index for index, item in enumerate(self.items)}
        user_index = {user: index for index, user in enumerate(users)}
        self.model: AlternatingLeastSquares | None = None
        if not weights:
            return
        matrix = sparse.csr_matrix(
            ([1.0 + CONFIDENCE * w for w in weights.values()],
             ([user_index[u] for u, _ in weights], [self.item_index[i] for _, i in weights])),
            shape=(len(users), len(self.items)), dtype=np.float32)
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit warns about OpenBLAS's thread pool, which the limit above has just set to one.
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            # Never more factors than the catalogue supports (an eighth of its titles): more overfit a small one.
            self.model = AlternatingLeastSquares(factors=min(factors, max(2, len(self.items) // 8)),
                                                 iterations=iterations,
                                                 regularization=REGULARIZATION, random_state=0, num_threads=1)
            self.model.fit(matrix, show_progress=False)

    def score(self, history: Sequence[str], candidates: Sequence[str]) -> dict[str, float]:
        """Predicted preference in [0, 1] of each known candidate for a viewer with this history."""
        seen = set(history)
        known_history = sorted({self.item_index[i] for i in seen if i in self.item_index})
        known = [c for c in dict.fromkeys(candidates) if c in self.item_index and c not in seen]
        if self.model is None or not known_history or not known:
            return {}
        row = sparse.csr_matrix((np.full(len(known_history), 1.0 + CONFIDENCE, dtype=np.float32),
                                 ([0] * len(known_history), known_history)), shape=(1, len(self.items)))
        with threadpool_limits(1, "blas"):
            ids, scores = self.model.recommend(0, row, N=len(known), recalculate_user=True,
                                               items=np.array([self.item_index[c] for c in known]),
                                               filter_already_liked_items=False)
        return {self.items[i]: float(min(max(s, 0.0), 1.0)) for i, s in zip(ids, scores)}


class ModelEndpoint:
    """One endpoint: its spec, the query runner, and the model trained last."""

    def __init__(self, spec: EndpointSpec, run_sql: Callable[[str], Rows],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.run_sql = run_sql
        self.clock = clock
        self.lock = threading.Lock()
        self.model: ImplicitRecommender | None = None
        self.trained_at = -float("inf")
        self.invocations = 0
        self.trainings = 0

    def _current(self) -> ImplicitRecommender:
        with self.lock:
            if self.model is None or self.clock() - self.trained_at >= self.spec.retrain_after_s:
                try:
                    rows = self.run_sql(self.spec.training_sql)
                except Exception as exc:  # any driver error: the container would answer 5xx
                    raise ModelError(f"training data unavailable: {type(exc).__name__}: {exc}") from exc
                self.model = ImplicitRecommender(rows)
                self.trained_at = self.clock()
                self.trainings += 1
            return self.model

    def invoke(self, body: bytes) -> bytes:
        names = self.spec.request
        try:
            request = json.loads(body)
            history = [str(i) for i in request[names["history"]]]
            candidates = [str(i) for i in request[names["candidates"]]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"request body must be JSON with {names['history']} and {names['candidates']} "
                             f"lists: {exc!r}") from exc
        scores = self._current().score(history, candidates)
        self.invocations += 1
        out = self.spec.response
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        return json.dumps({out["list"]: [{out["item"]: item, out["score"]: round(score, 6)}
                                         for item, score in ranked]}).encode()

    def status(self) -> dict[str, Any]:
        model = self.model
        return {"invocations": self.invocations, "trainings": self.trainings,
                "items": len(model.items) if model else 0}


class Endpoints:
    """The endpoints this sandbox serves, by name (SageMaker endpoint names are case-insensitive)."""

    def __init__(self) -> None:
        self._endpoints: dict[str, ModelEndpoint] = {}
        self._lock = threading.Lock()

    def register(self, name: str, endpoint: ModelEndpoint) -> None:
        with self._lock:
            self._endpoints[name.lower()] = endpoint

    def get(self, name: str) -> ModelEndpoint | None:
        return self._endpoints.get(name.lower())

    def status(self) -> dict[str, Any]:
        return {name: endpoint.status() for name, endpoint in sorted(self._endpoints.items())}

    def clear(self) -> None:
        with self._lock:
            self._endpoints.clear()


ENDPOINTS = Endpoints()
