"""Load through the clickstream stack: events offered to Kinesis as producers send them, every one
accounted for in DynamoDB and in the insights the internal ALB serves.

    TAPSTACK_STACK=clickstream python benchmarks/stream_load.py [--env dev] [--events 10000]
        [--duration 60] [--users 500] [--pages 50] [--poison 20] [--crashes 3] [--throttles 40]
        [--outage 0] [--settle 180]

Open loop: every 100 ms the events due by then go out in one ``PutRecords`` call (up to 500 records,
partition key user_id), as a batching producer sends them; records the stream refuses
(``FailedRecordCount``) are sent again. ``--poison`` invalid records go out among them. Against
the sandbox, failures are injected while the load runs: stream_processor's execution environment
is killed mid-batch ``--crashes`` times, ``--throttles`` of its TransactWriteItems calls are
answered ProvisionedThroughputExceededException (``/_sandbox/faults``), and with ``--outage S`` at
40 % of the run an outage of S seconds (reserved concurrency 0, then the sandbox's clock moved past the
records' maximum age) makes the mapping give records up to the given-up bucket; once the load has
been offered, ``stacks/clickstream/tools/replay_given_up.py`` puts them back, as an operator would
(bring the sandbox up with ``--var max_record_age_seconds=60`` so the clock moves by a minute).

Accounting: from the first send, the per-user items are polled (BatchGetItem of the exact keys
accepted and not seen yet, every two seconds) until all are there or ``--settle`` seconds pass
after the last send; lag is first seen minus accepted (so it includes up to one polling interval). Then per user and per page a Query counts the items (more than sent: a duplicate,
fewer: lost), the ALB's ``/users/{id}`` and ``/pages/{page}`` must report exactly what was sent,
and the failure queue must hold every poison record (at least once). The insights' counts must be
exact and their distinct counts within four standard errors of the truth (exact up to 64). Their
cost: the items and read units of a page's 24-hour insight now, and of the raw partition the old
design queried, both scaled to a day at the spec's peak (~10,000 events/min). Exit 1 when anything
is lost, duplicated or miscounted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import _cpu_snapshot, _percentile, _print_cpu, _sandbox_usage

from tapharness.deployed import ENV_VAR, Target, load_target

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("replay_given_up", ROOT / "stacks/clickstream/tools/replay_given_up.py")
assert _spec is not None and _spec.loader is not None
replay_given_up = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = replay_given_up
_spec.loader.exec_module(replay_given_up)

TICK_S = 0.1
PEAK_PER_DAY = 10_000 * 60 * 24  # the spec's peak held for a day
SKETCH_ERROR = 0.0325  # the distinct sketch's standard error beyond its exact range
POLL_EVERY_S = 2.0
TYPES = ("page_view", "page_view", "page_view", "click", "click", "scroll", "search", "add_to_cart", "purchase")


@dataclass
class Event:
    index: int
    body: dict[str, Any]
    due: float
    accepted: float | None = None
    seen: float | None = None

    @property
    def user_key(self) -> dict[str, Any]:
        moment = datetime.fromisoformat(self.body["occurred_at"]).isoformat(timespec="milliseconds")
        sort_key = f"{moment.replace('+00:00', 'Z')}#{self.body['event_id']}"
        return {"pk": {"S": f"USER#{self.body['user_id']}"}, "sk": {"S": sort_key}}


def plan(total: int, users: int, pages: int, rate: float) -> list[Event]:
    """The run's events; users and pages are named after the run, so the counts start at zero."""
    run = uuid.uuid4().hex[:8]
    rng = random.Random(run)
    now = datetime.now(UTC)
    return [Event(i, {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                      "user_id": f"{run}-user-{rng.randrange(users):05d}", "session_id": f"s-{rng.randrange(users * 3)}",
                      "page": f"{run}-page-{rng.randrange(pages):03d}", "event_type": rng.choice(TYPES),
                      "occurred_at": now.isoformat(timespec="milliseconds")}, i / rate)
            for i in range(total)]


def offer(target: Target, events: list[Event], poison: int, say: Any) -> tuple[float, int]:
    """Send every event (and the poison records) on schedule; returns (seconds taken, records resent)."""
    kinesis, stream = target.client("kinesis"), str(target.output("kinesis_stream_name"))
    pending: list[tuple[bytes, str, Event | None]] = []
    bad = [(b'{"not": "an event"', f"poison-{i}", None) for i in range(poison)]
    start, sent, resent, next_report = time.monotonic(), 0, 0, 5.0
    while sent < len(events) or pending or bad:
        elapsed = time.monotonic() - start
        while sent < len(events) and events[sent].due <= elapsed:
            event = events[sent]
            pending.append((json.dumps(event.body).encode(), event.body["user_id"], event))
            if bad and sent % max(1, len(events) // (poison + 1)) == 0:
                pending.append(bad.pop())
            sent += 1
        if sent == len(events):
            pending += bad
            bad = []
        batch, pending = pending[:500], pending[500:]
        if batch:
            response = kinesis.put_records(StreamName=stream, Records=[
                {"Data": data, "PartitionKey": key} for data, key, _ in batch])
            now = time.monotonic()
            for (data, key, event), result in zip(batch, response["Records"], strict=True):
                if "ErrorCode" in result:
                    pending.append((data, key, event))
                    resent += 1
                elif event is not None:
                    event.accepted = now
        if elapsed >= next_report:
            say(f"offered {sent}/{len(events)} in {elapsed:.0f}s")
            next_report += 5.0
        time.sleep(max(0.0, TICK_S - (time.monotonic() - start - elapsed)))
    return time.monotonic() - start, resent


def account(target: Target, events: list[Event], offered: threading.Event, settle: float, say: Any) -> None:
    """Poll from the start until every accepted event is seen, or ``settle`` s after the last send."""
    ddb, table = target.client("dynamodb"), str(target.output("dynamodb_table_name"))
    deadline = float("inf")
    while time.monotonic() < deadline:
        if offered.is_set() and deadline == float("inf"):
            deadline = time.monotonic() + settle
        unseen = [e for e in events if e.seen is None and e.accepted is not None]
        if offered.is_set() and not [e for e in events if e.seen is None]:
            return
        by_key = {json.dumps(e.user_key, sort_keys=True): e for e in unseen}
        keys = list(by_key)
        for start in range(0, len(keys), 100):
            request = {table: {"Keys": [json.loads(k) for k in keys[start:start + 100]]}}
            while request:
                response = ddb.batch_get_item(RequestItems=request)
                now = time.monotonic()
                for item in response["Responses"].get(table, []):
                    found = by_key.get(json.dumps({"pk": item["pk"], "sk": item["sk"]}, sort_keys=True))
                    if found is not None:
                        found.seen = now
                request = response.get("UnprocessedKeys") or {}
        if offered.is_set():
            say(f"stored {sum(e.seen is not None for e in events)}/{len(events)}")
        time.sleep(POLL_EVERY_S)


def stored_counts(target: Target, prefix: str, names: set[str]) -> Counter[str]:
    ddb, table = target.client("dynamodb"), str(target.output("dynamodb_table_name"))
    counts: Counter[str] = Counter()
    for name in names:
        for page in ddb.get_paginator("query").paginate(TableName=table, Select="COUNT",
                                                        KeyConditionExpression="pk = :pk",
                                                        ExpressionAttributeValues={":pk": {"S": f"{prefix}{name}"}}):
            counts[name] += page["Count"]
    return counts


def parked_count(target: Target) -> int:
    queue = target.client("sqs").get_queue_attributes(QueueUrl=str(target.output("stream_failures_queue_url")),
                                                      AttributeNames=["ApproximateNumberOfMessages",
                                                                      "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in queue["Attributes"].values())


def wait_for_parked(target: Target, expected: int, timeout: float = 30.0) -> int:
    """The failure queue's depth once it reaches ``expected`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    depth = parked_count(target)
    while depth < expected and time.monotonic() < deadline:
        time.sleep(1.0)
        depth = parked_count(target)
    return depth


def outage(target: Target, start_after: float, seconds: float, say: Any) -> int:
    """Stop stream_processor (reserved concurrency 0) for ``seconds``, move the sandbox's clock past
    the records' maximum age, wait until the mapping has given records up, and start it again;
    returns how many failure records the given-up bucket holds."""
    lam, s3 = target.client("lambda"), target.client("s3")
    function, bucket = str(target.output("lambda_function_names")["stream_processor"]), str(target.output("given_up_bucket"))
    [mapping] = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    time.sleep(start_after)
    lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    say(f"outage: stream_processor stopped for {seconds:.0f}s")
    try:
        time.sleep(seconds)
        target.control("POST", "clock", {"advance_s": mapping["MaximumRecordAgeInSeconds"] + 1})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = s3.list_objects_v2(Bucket=bucket, Prefix=replay_given_up.PREFIX).get("KeyCount", 0)
            if found:
                return int(found)
            time.sleep(1.0)
        return 0
    finally:
        lam.delete_function_concurrency(FunctionName=function)
        say("outage over: stream_processor started again")


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (attribute names and values)."""
    def value(v: dict[str, Any]) -> int:
        kind, body = next(iter(v.items()))
        if kind == "N":
            return (len(body.strip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
        return len(body) if kind == "B" else len(str(body).encode())
    return sum(len(name.encode()) + value(v) for name, v in item.items())


def read_units(total_bytes: float) -> float:
    return max(1, math.ceil(total_bytes / 4096)) * 0.5  # a Query, eventually consistent


def insight_cost(target: Target, page: str, pages: int) -> None:
    """What one page's 24-hour insight costs at a day of peak data spread over ``pages`` pages,
    measured on this run's items: now (its hourly aggregates: two items per hour) and before (the
    page's whole raw partition, which the old design queried)."""
    ddb, table = target.client("dynamodb"), str(target.output("dynamodb_table_name"))

    def items(pk: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page_ in ddb.get_paginator("query").paginate(TableName=table, KeyConditionExpression="pk = :pk",
                                                          ExpressionAttributeValues={":pk": {"S": pk}}):
            found += page_["Items"]
        return found

    aggregate, raw = items(f"AGG#PAGE#{page}"), items(f"PAGE#{page}")
    per_hour = sum(map(item_bytes, aggregate)) / max(1, len({i["sk"]["S"][:13] for i in aggregate}))
    raw_item = sum(map(item_bytes, raw)) / max(1, len(raw))
    day_raw_items = PEAK_PER_DAY / pages
    print(f"insights  one page's 24-hour insight at a day of peak ({PEAK_PER_DAY:,} events over {pages} pages): "
          f"now 48 items, {24 * per_hour / 1024:.1f} KB, {read_units(24 * per_hour)} read units per request; "
          f"the old design's query of the raw partition: {day_raw_items:,.0f} items, "
          f"{day_raw_items * raw_item / 2**20:.0f} MiB, {read_units(day_raw_items * raw_item):,.0f} read units")


def insight(target: Target, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{str(target.output('alb_url')).rstrip('/')}{path}", timeout=30) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=os.environ.get(ENV_VAR, "dev"))
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--poison", type=int, default=20)
    parser.add_argument("--crashes", type=int, default=3)
    parser.add_argument("--throttles", type=int, default=40)
    parser.add_argument("--outage", type=float, default=0.0, help="seconds stream_processor is stopped (0: none)")
    parser.add_argument("--settle", type=float, default=180.0)
    args = parser.parse_args(argv)
    os.environ[ENV_VAR] = args.env
    target = load_target()
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[load +{time.monotonic() - started:6.1f}s] {message}", flush=True)

    if target.is_sandbox:
        function = str(target.output("lambda_function_names")["stream_processor"])
        target.control("POST", "faults", {"crash": {"function": function, "count": args.crashes, "after_s": 0.05},
                                   "error": {"request": "dynamodb TransactWriteItems", "count": args.throttles,
                                             "code": "ProvisionedThroughputExceededException", "share": 0.5}})
    before = _sandbox_usage(args.env) if target.is_sandbox else None
    cpu_before = _cpu_snapshot(args.env) if target.is_sandbox else None
    parked_before = parked_count(target)
    faults_before = target.control("GET", "faults") if target.is_sandbox else None
    events = plan(args.events, args.users, args.pages, args.events / args.duration)
    offered = threading.Event()
    accountant = threading.Thread(target=account, args=(target, events, offered, args.settle, say), daemon=True)
    accountant.start()
    given_up: list[int] = []
    stopper = None
    if args.outage and target.is_sandbox:
        stopper = threading.Thread(target=lambda: given_up.append(outage(target, args.duration * 0.4, args.outage, say)),
                                   daemon=True)
        stopper.start()
    offered_s, resent = offer(target, events, args.poison, say)
    say(f"offered {len(events)} events and {args.poison} poison records in {offered_s:.1f}s")
    replayed: dict[str, int] = {}
    if stopper is not None:
        stopper.join()
        replayed = replay_given_up.replay(target)
        say(f"replayed what was given up: {replayed}")
    offered.set()
    accountant.join()
    after = _sandbox_usage(args.env) if target.is_sandbox else None

    lost = [e for e in events if e.seen is None]
    lags = [e.seen - e.accepted for e in events if e.seen is not None and e.accepted is not None]
    sent_users = Counter(e.body["user_id"] for e in events)
    sent_pages = Counter(e.body["page"] for e in events)
    users = stored_counts(target, "USER#", set(sent_users))
    pages = stored_counts(target, "PAGE#", set(sent_pages))
    duplicates = sum(max(0, users[u] - n) for u, n in sent_users.items()) + sum(
        max(0, pages[p] - n) for p, n in sent_pages.items())
    missing = sum(max(0, n - users[u]) for u, n in sent_users.items()) + sum(
        max(0, n - pages[p]) for p, n in sent_pages.items())
    distinct_users = {p: len({e.body["user_id"] for e in events if e.body["page"] == p}) for p in sent_pages}
    wrong_insights, worst_error = [], 0.0
    for p, n in sent_pages.items():
        answer, truth = insight(target, f"/pages/{p}"), distinct_users[p]
        error = abs(answer["unique_users"] - truth) / truth
        worst_error = max(worst_error, error)
        if answer["views"] != n or error > 4 * SKETCH_ERROR or (truth <= 64 and error):
            wrong_insights.append(p)
    wrong_insights += [u for u, n in list(sent_users.items())[:50] if insight(target, f"/users/{u}")["events"] != n]
    parked = wait_for_parked(target, parked_before + args.poison) - parked_before

    print("\n== clickstream load")
    print(f"offered   {len(events)} events in {offered_s:.1f}s: {len(events) / offered_s:.0f} events/s "
          f"({len(events) / offered_s * 60:.0f}/min); records resent after a refusal: {resent}")
    print(f"lag       accepted -> stored: p50 {_percentile(lags, 0.5):.2f}s  p99 {_percentile(lags, 0.99):.2f}s  "
          f"max {max(lags, default=float('nan')):.2f}s")
    print(f"lost      {len(lost)} (items missing: {missing})")
    print(f"duplicate {duplicates} items")
    print(f"insights  {len(sent_pages)} pages and {min(50, len(sent_users))} users checked through the ALB, "
          f"{len(wrong_insights)} wrong; unique users off by {worst_error:.1%} at worst")
    insight_cost(target, next(iter(sent_pages)), len(sent_pages))
    if given_up:
        print(f"given up  {args.outage:.0f}s outage: {replayed.get('records', 0)} records given up with their data "
              f"({replayed.get('failure_records', 0)} failure records in the given-up bucket); replayed "
              f"{replayed.get('replayed', 0)}, {replayed.get('left', 0)} left")
    print(f"poison    {args.poison} sent, {parked} parked in stream_failures (at least once: a consumer that "
          "crashes after parking parks again)")
    if faults_before is not None:
        faults = target.control("GET", "faults")
        crashed = sum(faults["crashed"].values()) - sum(faults_before["crashed"].values())
        throttled = sum(faults["injected"].values()) - sum(faults_before["injected"].values())
        print(f"faults    stream_processor crashed {crashed}x mid-batch, {throttled} TransactWriteItems calls throttled")
    if before and after:
        print(f"sandbox   CPU {after[0] - before[0]:.0f}s over the run, RSS {after[1] / 2**20:.0f} MiB at the end")
    _print_cpu(cpu_before, args.env, len(events))
    ok = (not lost and not duplicates and not missing and not wrong_insights and parked >= args.poison
          and replayed.get("left", 0) == 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
