"""The main job's second half: seed a catalogue and a viewing history, refresh the recommendation
cache, send a viewer's events through the deployed API, show where they landed (ten ranked
recommendations from the model, a badge, Aurora statistics), then run the nightly expiration and
read its archive; each step says how long it took.

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
from datetime import UTC, datetime, timedelta
from typing import Any

from pg8000.exceptions import DatabaseError

from tapharness import seed, video
from tapharness.deployed import ENV_VAR, NoTarget, Target, load_target
from tapharness.retry import wait_for

HOP_TIMEOUT_S = 180.0
DEMO_GENRE = "thriller"
DEMO_TITLES = 10  # finished by the demo viewer: ten distinct titles earn the videos_10 badge
START_POSITION_S = 60.0


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


def _done(label: str, since: float, detail: str) -> None:
    """Print a step with how long it took since `since` (a time.monotonic() value)."""
    print(f"  [{time.monotonic() - since:5.1f} s] {label}: {detail}")


def _seed(target: Target, world: seed.World) -> None:
    connection = target.connect_db()
    try:
        seed.load_aurora(connection, world)
    finally:
        connection.close()
    seed.load_catalog_table(target.client("dynamodb"), target.output("dynamodb_table_names", "catalog"), world)
    seed.load_raw_events(target.client("s3"), target.output("s3_bucket_names", "archive"), "raw/", world)


def _watch(target: Target, user: str, titles: list[seed.Title]) -> bool:
    for title in titles:
        for route, position in (("watch", START_POSITION_S), ("complete", title.duration_seconds - 10)):
            event = {"event_id": str(uuid.uuid4()), "user_id": user, "content_id": title.content_id,
                     "position_seconds": position, "duration_seconds": title.duration_seconds,
                     "client_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
            status, body = _post(target.route_url(route), event)
            if status != 202:
                print(f"  POST /{route} {title.content_id} -> {status} {json.dumps(body)}")
                return False
    status, body = _post(target.route_url("watch"), {"user_id": user})
    print(f"  POST /watch without the required fields -> {status} {json.dumps(body)} (nothing written)")
    return True


def _recommendations(item: dict[str, Any], titles: dict[str, seed.Title]) -> list[str]:
    lines = []
    for entry in item["items"]["L"]:
        fields = entry["M"]
        title = titles.get(fields["content_id"]["S"])
        name = f"{title.title} ({title.genre})" if title else "?"
        lines.append(f"    {fields['rank']['N']:>2}. {fields['content_id']['S']}  {name:<32} "
                     f"score {float(fields['score']['N']):.3f}  via {fields.get('source', {}).get('S', '?')}")
    return lines


def _expire(target: Target) -> tuple[dict[str, Any], list[Any]]:
    sfn = target.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=target.output("state_machine_arn"),
                              name=f"demo-{uuid.uuid4().hex[:12]}", input="{}")["executionArn"]
    execution = wait_for("the expiration run", lambda: sfn.describe_execution(executionArn=arn), HOP_TIMEOUT_S,
                         ready=lambda e: e["status"] != "RUNNING")
    return execution, json.loads(execution.get("output") or "[]")


def run(target: Target) -> int:
    print(f"target: {target.describe()}")
    started = time.monotonic()
    world = seed.build()
    titles = {t.content_id: t for t in world.titles}
    since = time.monotonic()
    _seed(target, world)
    _done("seed", since, f"{len(world.titles)} titles in {len(seed.GENRES)} genres ({len(world.expired_ids)} "
          f"licences expired yesterday), {len({v.user_id for v in world.viewings})} viewers, "
          f"{len(world.viewings)} viewings -> Aurora, content_catalog, raw events in S3")
    since = time.monotonic()
    refreshed = video.refresh_cache(target)
    _done("cache_refresh (Aurora -> Redis)", since, f"{refreshed['titles']} content:* hashes, "
          f"{refreshed['neighbour_lists']} cf:* lists ({refreshed['neighbours']} neighbours), "
          f"{refreshed['expired']} expired")

    since = time.monotonic()
    answer = wait_for("the recommendation model to know the seed catalogue",
                      lambda: video.model_answer(target, world), HOP_TIMEOUT_S)
    _done(f"SageMaker endpoint {video.endpoint_name(target)}", since,
          f"scores the seed catalogue ({len(answer)} candidates scored for a seed viewer)")

    user = f"demo-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    favourites = [t for t in world.titles if t.genre == DEMO_GENRE and t.license_expiry_date >= today][:DEMO_TITLES]
    print(f"viewer {user} finishes {len(favourites)} {DEMO_GENRE} titles through the API "
          f"({', '.join(t.content_id for t in favourites)})")
    since = time.monotonic()
    if not _watch(target, user, favourites):
        return 1
    _done("API", since, f"{2 * len(favourites)} events accepted (202)")
    finished = {t.content_id for t in favourites}

    def landed(label: str, probe: Any, show: Any, ready: Any = bool) -> Any:
        value = wait_for(label, probe, HOP_TIMEOUT_S, ready=ready, retry_on=(OSError,))
        _done(label, since, show(value))
        return value

    landed("user_activity SUMMARY (Kinesis -> activity_consumer)",
           lambda: _item(target, "activity", {"user_id": user, "timestamp": "SUMMARY"}),
           lambda item: {k: next(iter(v.values())) for k, v in item.items()
                         if k in ("last_viewed", "completed_count", "watch_seconds", "last_content_id")},
           ready=lambda item: bool(item) and item.get("completed_count", {}).get("N") == str(len(favourites)))
    recs = landed("user_recommendations (DynamoDB stream -> recommendations -> SageMaker)",
                  lambda: _item(target, "recommendations", {"user_id": user}),
                  lambda item: f"{len(item['items']['L'])} ranked items from {item['source']['S']}",
                  ready=lambda item: bool(item) and item["source"]["S"] == "sagemaker"
                  and len(item["items"]["L"]) >= 10
                  and not finished & {e["M"]["content_id"]["S"] for e in item["items"]["L"]})
    print("\n".join(_recommendations(recs, titles)))
    landed("user_achievements (watched-complete -> achievements queue -> achievements_consumer)",
           lambda: _item(target, "achievements", {"user_id": user, "badge_id": "videos_10"}),
           lambda item: f"badge {item['badge_id']['S']} awarded at {item['awarded_at']['S']}")
    first = favourites[0].content_id
    landed(f"Aurora content_stats of {first} (analytics queue -> analytics_consumer)",
           lambda: _content_stats(target, first),
           lambda row: {"view_count": row[0], "full_completions": row[1], "completion_rate": round(row[2], 3)})

    since = time.monotonic()
    execution, branches = _expire(target)
    detail = {k: v for out in branches for k, v in out.items() if k in ("content_ids", "state", "table")}
    _done("nightly expiration (Step Functions)", since, f"{execution['status']} {json.dumps(detail)}")
    if execution["status"] != "SUCCEEDED":
        return 1
    archived = today - timedelta(days=1)
    archive = video.archived_event_ids(target, archived)
    rows = sum(len(ids) for ids in archive.values())
    print(f"  archive of {archived}: {rows} viewing events in {len(archive)} Parquet objects, e.g. "
          f"s3://{target.output('s3_bucket_names', 'archive')}/viewing/day={archived}/{next(iter(archive), '(none)')}")
    print(f"logs: CloudWatch Logs groups {sorted(target.output('log_group_names').values())[:3]} ...")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if archive else 1


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
