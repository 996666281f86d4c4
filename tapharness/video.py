"""What the video-streaming demo and its integration tests both do to a deployed stack (the
sandbox or a real account): refresh the recommendation cache, ask the recommendation endpoint,
read the nightly archive."""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from tapharness.deployed import Target
from tapharness.seed import World


def refresh_cache(target: Target) -> dict[str, Any]:
    """Invoke cache_refresh now (its schedule would, within the hour); its answer, or RuntimeError."""
    response = target.client("lambda").invoke(FunctionName=target.output("lambda_function_names", "cache_refresh"),
                                               Payload=b"{}")
    answer = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"cache_refresh failed: {answer}")
    return answer


def endpoint_name(target: Target) -> str:
    return str(target.output("sagemaker_endpoint_arn")).rsplit("/", 1)[-1]


def model_answer(target: Target, world: World) -> list[dict[str, Any]]:
    """What the recommendation endpoint answers for one seed viewer's history: empty until its model
    knows the seed catalogue (a model is trained on what it has seen, so a fresh catalogue waits for
    its next training)."""
    viewer = world.viewings[-1].user_id
    history = [v.content_id for v in world.viewings if v.user_id == viewer and v.full][-10:]
    candidates = [t.content_id for t in world.titles if t.content_id not in history][:100]
    response = target.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint_name(target), ContentType="application/json", Accept="application/json",
        Body=json.dumps({"user_id": viewer, "recent_content_ids": history, "candidates": candidates}).encode())
    return list(json.loads(response["Body"].read()).get("recommendations", []))


def archived_event_ids(target: Target, day: date) -> dict[str, list[str]]:
    """The event ids in each Parquet object of the nightly archive of `day`, by key relative to
    the day's prefix (``year=YYYY/month=MM/…``)."""
    bucket, prefix = target.output("s3_bucket_names", "archive"), f"viewing/day={day.isoformat()}/"
    s3, ids = target.client("s3"), {}
    with tempfile.TemporaryDirectory() as work, duckdb.connect() as con:
        for n, obj in enumerate(s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])):
            path = Path(work) / f"{n}.parquet"
            path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            ids[obj["Key"][len(prefix):]] = [row[0] for row in con.execute(
                "SELECT event_id FROM read_parquet(?)", [str(path)]).fetchall()]
    return ids
