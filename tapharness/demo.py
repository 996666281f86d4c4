"""The main job's second half: send a viewer's events through the deployed API and show where they landed.

    python -m tapharness.demo [--env dev]

Works against whatever ``tapharness.deployed`` targets: the running sandbox of ``--env``
(after ``python -m tapharness.sandbox up``) or a real account (``TAPSTACK_OUTPUTS``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from pg8000.exceptions import DatabaseError

from tapharness.deployed import ENV_VAR, NoTarget, Target, load_target
from tapharness.retry import wait_for

HOP_TIMEOUT_S = 120.0
DURATION_S = 1800.0
# (route, position in seconds): a viewer starts, pauses half-way and watches to the end.
SESSION = (("watch", 60.0), ("pause", 900.0), ("complete", 1790.0))


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _item(target: Target, table: str, key: dict[str, str]) -> dict[str, Any] | None:
    response = target.client("dynamodb").get_item(
        TableName=target.output("dynamodb_table_names", table), ConsistentRead=True,
        Key={name: {"S": value} for name, value in key.items()})
    return response.get("Item")


UNDEFINED_TABLE = "42P01"


def _content_stats(target: Target, content_id: str) -> list[Any] | None:
    connection = target.connect_db()
    try:
        rows = connection.run("SELECT view_count, full_completions, completion_rate FROM content_stats "
                              "WHERE content_id = :c", c=content_id)
    except DatabaseError as error:
        # The analytics consumer creates its schema with its first batch: until then, not yet.
        if error.args and isinstance(error.args[0], dict) and error.args[0].get("C") == UNDEFINED_TABLE:
            return None
        raise
    finally:
        connection.close()
    return rows[0] if rows else None


def run(target: Target) -> int:
    user, content = f"demo-{uuid.uuid4().hex[:8]}", f"demo-title-{uuid.uuid4().hex[:6]}"
    print(f"target: {target.describe()}")
    print(f"viewer {user} watches {content} ({DURATION_S:.0f} s)")
    started = time.monotonic()
    for route, position in SESSION:
        event = {"event_id": str(uuid.uuid4()), "user_id": user, "content_id": content,
                 "position_seconds": position, "duration_seconds": DURATION_S,
                 "client_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        status, body = _post(target.route_url(route), event)
        print(f"  POST /{route:<8} position {position:>6.0f} s -> {status} {json.dumps(body)}")
        if status != 202:
            return 1
    status, body = _post(target.route_url("watch"), {"user_id": user})
    print(f"  POST /watch    without the required fields -> {status} {json.dumps(body)} (nothing written)")

    def landed(label: str, probe: Any, show: Any, ready: Any = bool) -> None:
        value = wait_for(label, probe, HOP_TIMEOUT_S, ready=ready, retry_on=(OSError,))
        print(f"  after {time.monotonic() - started:5.1f} s  {label}: {show(value)}")

    print("where they landed (watch time is credited against the API's clock: a session posted within a second "
          "earns at most the 300 s a viewer may bank, whatever the positions say):")
    landed("user_activity SUMMARY (Kinesis -> activity_consumer)",
           lambda: _item(target, "activity", {"user_id": user, "timestamp": "SUMMARY"}),
           lambda item: {k: next(iter(v.values())) for k, v in item.items()
                         if k in ("last_viewed", "completed_count", "watch_seconds", "last_content_id")},
           # The summary exists after the first event; the session has landed once the completion counts.
           ready=lambda item: bool(item) and item.get("completed_count", {}).get("N") == "1")
    landed("user_recommendations (DynamoDB stream -> recommendations)",
           lambda: _item(target, "recommendations", {"user_id": user}),
           lambda item: f"{len(item['items']['L'])} ranked items from {item['source']['S']}"
                        + (" (no SageMaker endpoint answered: Redis/catalog ranking)"
                           if item["source"]["S"] == "fallback" else ""))
    landed("Aurora content_stats (watched-complete -> analytics queue -> analytics_consumer)",
           lambda: _content_stats(target, content),
           lambda row: {"view_count": row[0], "full_completions": row[1], "completion_rate": row[2]})
    print(f"logs: CloudWatch Logs groups {sorted(target.output('log_group_names').values())[:3]} ...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tapharness.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=os.environ.get(ENV_VAR, "dev"), choices=("dev", "staging", "prod"))
    args = parser.parse_args(argv)
    try:
        target = load_target({**os.environ, ENV_VAR: args.env})
    except NoTarget as error:
        print(error)
        return 2
    return run(target)


if __name__ == "__main__":
    raise SystemExit(main())
