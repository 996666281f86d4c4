"""Fixtures of the clickstream integration suite: the deployed stack, a producer, the ALB."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tapharness.deployed import Target

# The operators' replay tool, as its documented command runs it.
_TOOL = Path(__file__).resolve().parents[2] / "tools" / "replay_given_up.py"
_spec = importlib.util.spec_from_file_location("replay_given_up", _TOOL)
assert _spec is not None and _spec.loader is not None
replay_given_up = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = replay_given_up
_spec.loader.exec_module(replay_given_up)


class Producer:
    """Puts events on the stream the way a batching producer does (PutRecords, key user_id)."""

    def __init__(self, target: Target) -> None:
        self.kinesis = target.client("kinesis")
        self.stream = str(target.output("kinesis_stream_name"))

    def put(self, records: list[bytes | dict[str, Any]]) -> None:
        entries = [{"Data": r if isinstance(r, bytes) else json.dumps(r).encode(),
                    "PartitionKey": r.get("user_id", "poison") if isinstance(r, dict) else "poison"} for r in records]
        while entries:
            response = self.kinesis.put_records(StreamName=self.stream, Records=entries)
            entries = [e for e, result in zip(entries, response["Records"], strict=True) if "ErrorCode" in result]


@pytest.fixture(scope="session")
def producer(target: Target) -> Producer:
    return Producer(target)


def event(user: str, page: str, event_type: str = "page_view") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "user_id": user, "session_id": "s1", "page": page,
            "event_type": event_type, "occurred_at": datetime.now(UTC).isoformat()}


class Insights:
    def __init__(self, target: Target) -> None:
        self.base = str(target.output("alb_url")).rstrip("/")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.base}{path}", timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body or b"null")
            except ValueError:  # the ALB's own error pages are HTML
                return error.code, body.decode(errors="replace")


@pytest.fixture(scope="session")
def insights(target: Target) -> Insights:
    return Insights(target)
