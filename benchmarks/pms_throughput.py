"""Sustained update rate of each PMS integration of the hotel-booking stack: inventory updates
published as the booking path publishes them, each room-night's newest version accounted for at
the PMS.

    TAPSTACK_STACK=hotel_booking python benchmarks/pms_throughput.py [--env dev] [--updates 2000]
        [--nights 200] [--duration 20] [--latency-ms 20] [--settle 180]

Against the sandbox (its PMS stand-ins answer after ``--latency-ms``, as a PMS across the internet
would). Per PMS of the stack: ``--updates`` inventory_changed messages over ``--nights`` room-nights
of a property of this run (versions 1, 2, ... of each night in order, the nights interleaved) go to
the inventory_updates topic over ``--duration`` seconds, in PublishBatch calls of 10 with the
``pms_id`` attribute, as booking_handler publishes them. Then it waits until every night's newest
version has reached the PMS (or ``--settle`` seconds) and prints per PMS: updates offered per
second, calls the PMS took, connections it accepted, the sustained rate (updates accounted for,
from the first publication to the last newest version received) and the lag of each night's
newest version (published → received) p50 / p99. A call carrying an older version than the
PMS already had is counted too. Exit 1 when a night's newest version never arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tapharness.deployed import ENV_VAR, Target, load_target

POLL_EVERY_S = 1.0


@dataclass
class Run:
    pms: str
    property_id: str
    nights: list[str]  # stay dates
    versions: dict[str, int]  # stay date -> newest version published
    published_at: dict[str, float] = field(default_factory=dict)  # stay date -> when its newest went out
    received_at: dict[str, float] = field(default_factory=dict)
    first_sent: float = 0.0
    offered_s: float = 0.0
    calls: int = 0
    connections: int = 0  # opened during the run
    connections_before: int = 0
    regressions: int = 0  # calls that carried an older version than the PMS already had


def plan(pms: str, updates: int, nights: int) -> tuple[Run, list[dict[str, Any]]]:
    """The run's messages: versions 1..k of each night, interleaved so consecutive messages differ in night."""
    property_id = f"bench-{uuid.uuid4().hex[:10]}"
    start = date.today() + timedelta(days=400)
    stays = [(start + timedelta(days=i)).isoformat() for i in range(nights)]
    versions = {stay: 0 for stay in stays}
    messages = []
    for i in range(updates):
        stay = stays[i % nights]
        versions[stay] += 1
        units = max(0, 50 - versions[stay])
        messages.append({"type": "inventory_changed", "reason": "benchmark", "pms_id": pms,
                         "property_id": property_id, "room_id": "king", "stay_date": stay,
                         "available_units": units, "total_units": 50, "version": versions[stay],
                         "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    return Run(pms, property_id, stays, versions), messages


def publish(target: Target, run: Run, messages: list[dict[str, Any]], duration: float) -> None:
    """PublishBatch calls of 10, paced so the run's messages go out over ``duration`` seconds."""
    sns = target.client("sns")
    topic = str(target.output("sns_topic_arn"))
    batches = [messages[i:i + 10] for i in range(0, len(messages), 10)]
    run.first_sent = time.monotonic()
    for k, chunk in enumerate(batches):
        due = run.first_sent + k * duration / max(1, len(batches))
        time.sleep(max(0.0, due - time.monotonic()))
        answer = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": str(i), "Message": json.dumps(m, separators=(",", ":")),
             "MessageAttributes": {"pms_id": {"DataType": "String", "StringValue": run.pms},
                                   "property_id": {"DataType": "String", "StringValue": run.property_id}}}
            for i, m in enumerate(chunk)])
        if answer.get("Failed"):
            raise RuntimeError(f"publications refused: {answer['Failed']}")
        now = time.monotonic()
        for m in chunk:
            if m["version"] == run.versions[m["stay_date"]]:
                run.published_at[m["stay_date"]] = now
    run.offered_s = time.monotonic() - run.first_sent


def account(target: Target, run: Run) -> None:
    """What the PMS stand-in received for the run's property: newest versions, calls, regressions."""
    answer = target.control("GET", f"partners/{run.pms}")
    run.connections = int(answer["connections"]) - run.connections_before
    had: dict[str, int] = {}
    calls = 0
    for call in answer["received"]:
        if call["path"] != f"/properties/{run.property_id}/availability":
            continue
        calls += 1
        stay, version = call["body"]["stay_date"], int(call["body"]["version"])
        if version < had.get(stay, 0):
            run.regressions += 1
        had[stay] = max(had.get(stay, 0), version)
        if version == run.versions[stay] and stay not in run.received_at:
            run.received_at[stay] = time.monotonic()
    run.calls = calls


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--updates", type=int, default=2000, help="updates per PMS")
    parser.add_argument("--nights", type=int, default=200, help="room-nights they cover, per PMS")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to publish them over")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the PMS stand-ins' answer time")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds to wait after the last publication")
    args = parser.parse_args()
    target = load_target({**os.environ, ENV_VAR: args.env})
    if not target.is_sandbox:
        print("pms_throughput needs the sandbox's PMS stand-ins (/_sandbox/partners)", file=sys.stderr)
        return 2
    pmses = sorted(target.output("pms_queue_urls"))
    runs = []
    for pms in pmses:
        before = target.control("POST", f"partners/{pms}", {"latency_s": args.latency_ms / 1000})["connections"]
        run, messages = plan(pms, args.updates, args.nights)
        run.connections_before = int(before)
        runs.append((run, messages))
    publishers = [threading.Thread(target=publish, args=(target, run, messages, args.duration))
                  for run, messages in runs]
    for thread in publishers:
        thread.start()
    for thread in publishers:
        thread.join()
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        for run, _ in runs:
            account(target, run)
        waiting = sum(len(run.nights) - len(run.received_at) for run, _ in runs)
        print(f"[pms] newest versions still on their way: {waiting}", file=sys.stderr)
        if not waiting:
            break
        time.sleep(POLL_EVERY_S)
    for pms in pmses:
        target.control("POST", f"partners/{pms}", {})
    print(f"\n{args.updates} updates per PMS over {args.nights} room-nights, published over {args.duration:.0f} s; "
          f"the stand-ins answer in {args.latency_ms:.0f} ms\n")
    print("| PMS | offered | calls the PMS took | connections | sustained (updates accounted for) "
          "| newest version lag p50 / p99 | newest versions missing | older after newer |")
    print("|---|---|---|---|---|---|---|---|")
    missing = 0
    for run, messages in runs:
        last = max(run.received_at.values(), default=run.first_sent)
        lags = [run.received_at[s] - run.published_at[s] for s in run.received_at]
        lost = len(run.nights) - len(run.received_at)
        missing += lost
        print(f"| {run.pms} | {len(messages) / run.offered_s:.0f}/s | {run.calls} | {run.connections} "
              f"| {len(messages) / max(1e-9, last - run.first_sent):.0f}/s "
              f"| {percentile(lags, 0.5):.1f} s / {percentile(lags, 0.99):.1f} s | {lost} | {run.regressions} |")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
