"""Load through the whole pipeline: synthetic viewers at a target rate, every event accounted for.

    python benchmarks/load.py [--env dev] [--events 10000] [--duration 60] [--events-per-viewer 6]
                              [--clients 64] [--settle 120]

Against whatever ``tapharness.deployed`` targets (the running sandbox of ``--env``, or a real
account through ``TAPSTACK_OUTPUTS``). Open loop: event k is due at ``k / rate`` seconds
whatever the answers so far (``rate = events / duration``); each viewer's events go out in
order (``/watch`` at increasing positions, one ``/pause``, one ``/complete`` past 90 %), and a
viewer's next event waits for its previous answer. Then it waits (``--settle`` seconds at most
after the last send) until every accepted event is accounted for:

- ``user_activity``: the event's item, and each viewer's SUMMARY (progress of the content,
  one completion);
- Aurora: each completion in ``processed_events`` and the per-content ``view_count`` of
  ``content_stats`` (a count above the completions sent is a duplicate);
- ``user_recommendations``: an item for each viewer.

The stores are polled from the start (every two seconds, BatchGetItem of the exact keys of
what is not seen yet); duplicates are counted once at the end (a Query per viewer).
It prints the offered and accepted rates, API latency p50/p99, end-to-end lag p50/p99 per
store (first seen by polling minus send time), events lost and duplicated, and, for a sandbox,
its CPU time and peak RSS (the sandbox process and its children), its garbage-collection
pauses, the AWS requests its endpoint served per event, by operation, and the CPU seconds per
1,000 events by process (the server, each function's workers, Redis, PostgreSQL, this client). A progress line
every five seconds. Exit 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tapharness import cpu, stacks
from tapharness.deployed import ENV_VAR, Target, load_target
from tapharness.sandbox.state import SandboxPaths, SandboxState

DURATION_S = 1800.0
CONTENTS = 50
PROGRESS_EVERY_S = 5.0
POLL_EVERY_S = 2.0


@dataclass
class Event:
    viewer: str
    content: str
    route: str
    position: float
    client_timestamp: str
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    due: float = 0.0
    sent: float = 0.0
    status: int = 0
    latency: float = 0.0

    def body(self) -> bytes:
        return json.dumps({"event_id": self.event_id, "user_id": self.viewer, "content_id": self.content,
                           "position_seconds": self.position, "duration_seconds": DURATION_S,
                           "client_timestamp": self.client_timestamp}).encode()


def plan_events(total: int, per_viewer: int, rate: float) -> tuple[list[Event], dict[str, list[Event]]]:
    """Viewers of ``per_viewer`` events each, interleaved so that event k is due at k / rate."""
    viewers = max(1, total // per_viewer)
    run = uuid.uuid4().hex[:8]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    by_viewer: dict[str, list[Event]] = {}
    for v in range(viewers):
        viewer, content = f"load-{run}-{v}", f"load-{run}-c{v % CONTENTS}"
        positions = [60.0 + i * (1500.0 / max(1, per_viewer - 2)) for i in range(per_viewer - 1)]
        routes = ["watch"] * (per_viewer - 2) + ["pause"]
        events = [Event(viewer, content, route, round(p, 1), _iso(start + timedelta(seconds=i)))
                  for i, (route, p) in enumerate(zip(routes, positions, strict=True))]
        events.append(Event(viewer, content, "complete", 1790.0, _iso(start + timedelta(seconds=per_viewer))))
        by_viewer[viewer] = events
    ordered = [by_viewer[v][i] for i in range(per_viewer) for v in by_viewer]
    for k, event in enumerate(ordered):
        event.due = k / rate
    return ordered, by_viewer


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Sender:
    """Posts events on keep-alive connections, one per client thread."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.local = threading.local()

    def _connection(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        connections = self.local.__dict__.setdefault("connections", {})
        if key not in connections:
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connections[key] = cls(parts.netloc, timeout=30)
        return connections[key]

    def send(self, event: Event) -> None:
        url = self.target.route_url(event.route)
        path = urlsplit(url).path
        event.sent = time.monotonic()
        for attempt in (1, 2):
            connection = self._connection(url)
            try:
                connection.request("POST", path, body=event.body(), headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                event.status = response.status
                break
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connections.clear()
                if attempt == 2:
                    event.status = -1
        event.latency = time.monotonic() - event.sent


def offer(target: Target, ordered: list[Event], clients: int, say: Any) -> float:
    """Send every event at its due time (a viewer's next one after its previous answer); returns the seconds taken."""
    sender = Sender(target)
    previous: dict[str, Future[None]] = {}
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_S
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:

        def after(prior: Future[None] | None, event: Event) -> None:
            if prior is not None:
                prior.result()
            sender.send(event)

        for event in ordered:
            delay = started + event.due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            previous[event.viewer] = pool.submit(after, previous.get(event.viewer), event)
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                answered = [e for e in ordered if e.status]
                say(f"sending: {len(answered)}/{len(ordered)} answered, "
                    f"{sum(1 for e in answered if e.status == 202)} accepted")
    return time.monotonic() - started


# --- accounting ----------------------------------------------------------------------------


@dataclass
class Ledger:
    """When each thing was first seen, and the duplicates found."""

    items: dict[str, float] = field(default_factory=dict)        # event_id -> seen
    summaries: dict[str, float] = field(default_factory=dict)    # viewer -> seen (complete and right)
    completions: dict[str, float] = field(default_factory=dict)  # completion event_id -> seen in Aurora
    recommendations: dict[str, float] = field(default_factory=dict)  # viewer -> seen
    duplicate_items: int = 0
    extra_views: int = 0


def _query_items(target: Target, table: str, viewer: str) -> list[dict[str, Any]]:
    items, kwargs = [], {}
    while True:
        page = target.client("dynamodb").query(
            TableName=table, KeyConditionExpression="user_id = :u", ConsistentRead=True,
            ExpressionAttributeValues={":u": {"S": viewer}}, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _batch_get(target: Target, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item of ``keys`` that exists (BatchGetItem, 100 keys a call, unprocessed keys retried)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
        while request:
            response = target.client("dynamodb").batch_get_item(RequestItems=request)
            found += response["Responses"].get(table, [])
            request = response.get("UnprocessedKeys") or {}
    return found


def _summary_right(item: dict[str, Any], last: Event) -> bool:
    progress = float(item.get("progress_by_content", {}).get("M", {}).get(last.content, {}).get("N", 0))
    return int(item.get("completed_count", {}).get("N", 0)) == 1 and abs(progress - round(1790 / DURATION_S, 4)) < 1e-6


def account(target: Target, by_viewer: dict[str, list[Event]], ledger: Ledger) -> None:
    """One polling pass over every store for what is not seen yet; records when it was first seen."""
    activity = target.output("dynamodb_table_names", "activity")
    recommendations = target.output("dynamodb_table_names", "recommendations")
    accepted = [e for events in by_viewer.values() for e in events if e.status == 202]
    unseen = [e for e in accepted if e.event_id not in ledger.items]
    by_key = {(e.viewer, f"{e.client_timestamp}#{e.event_id}"): e for e in unseen}
    for item in _batch_get(target, activity, [{"user_id": {"S": v}, "timestamp": {"S": k}} for v, k in by_key]):
        ledger.items.setdefault(by_key[(item["user_id"]["S"], item["timestamp"]["S"])].event_id, time.monotonic())
    finished = {v for v, events in by_viewer.items() if events[-1].status == 202}
    pending = sorted(v for v in finished if v not in ledger.summaries)
    for item in _batch_get(target, activity, [{"user_id": {"S": v}, "timestamp": {"S": "SUMMARY"}} for v in pending]):
        viewer = item["user_id"]["S"]
        if _summary_right(item, by_viewer[viewer][-1]):
            ledger.summaries.setdefault(viewer, time.monotonic())
    waiting = sorted(v for v in finished if v not in ledger.recommendations)
    for item in _batch_get(target, recommendations, [{"user_id": {"S": v}} for v in waiting]):
        ledger.recommendations.setdefault(item["user_id"]["S"], time.monotonic())
    completions = [e for e in accepted if e.route == "complete"]
    wanted = [e.event_id for e in completions if e.event_id not in ledger.completions]
    if not wanted:
        return
    connection = target.connect_db()
    try:
        for chunk in range(0, len(wanted), 500):
            rows = connection.run("SELECT event_id FROM processed_events WHERE event_id = ANY(:ids)",
                                  ids=wanted[chunk:chunk + 500])
            for (event_id,) in rows:
                ledger.completions.setdefault(event_id, time.monotonic())
    except Exception as exc:
        if "42P01" not in str(exc):
            raise
    finally:
        connection.close()


def count_duplicates(target: Target, by_viewer: dict[str, list[Event]], ledger: Ledger) -> None:
    """Once at the end: event items stored more than once, and views counted more than once."""
    activity = target.output("dynamodb_table_names", "activity")
    for viewer in by_viewer:
        ids = [item["timestamp"]["S"].rsplit("#", 1)[-1] for item in _query_items(target, activity, viewer)
               if item["timestamp"]["S"] != "SUMMARY" and not item["timestamp"]["S"].startswith("completed#")]
        ledger.duplicate_items += len(ids) - len(set(ids))
    completions = [e for events in by_viewer.values() for e in events if e.route == "complete" and e.status == 202]
    expected: dict[str, int] = {}
    for event in completions:
        expected[event.content] = expected.get(event.content, 0) + 1
    if not expected:
        return
    connection = target.connect_db()
    try:
        rows = connection.run("SELECT content_id, view_count FROM content_stats WHERE content_id = ANY(:c)",
                              c=sorted(expected))
        ledger.extra_views = sum(max(0, int(count) - expected[content]) for content, count in rows)
    finally:
        connection.close()


def _account_until_done(target: Target, by_viewer: dict[str, list[Event]], ledger: Ledger,
                        sending: threading.Event, args: argparse.Namespace, say: Any, peak_rss: list[int]) -> None:
    """Poll the stores while events are sent and afterwards, until all is seen or ``--settle`` passes."""
    deadline: float | None = None
    while True:
        account(target, by_viewer, ledger)
        usage = _sandbox_usage(args.env) if target.is_sandbox else None
        if usage:
            peak_rss[0] = max(peak_rss[0], usage[1])
        events = [e for evs in by_viewer.values() for e in evs]
        accepted = [e for e in events if e.status == 202]
        viewers = {e.viewer for e in accepted}
        completions = [e for e in accepted if e.route == "complete"]
        say(f"accounted: items {len(ledger.items)}/{len(accepted)}, summaries {len(ledger.summaries)}/{len(viewers)}, "
            f"aurora {len(ledger.completions)}/{len(completions)}, "
            f"recommendations {len(ledger.recommendations)}/{len(viewers)}")
        if not sending.is_set():
            deadline = deadline or time.monotonic() + args.settle
            complete = (len(ledger.items) == len(accepted) and len(ledger.summaries) == len(viewers)
                        and len(ledger.completions) == len(completions)
                        and len(ledger.recommendations) == len(viewers))
            if complete or time.monotonic() > deadline:
                return
        time.sleep(POLL_EVERY_S)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sandbox_usage(env: str) -> tuple[float, int] | None:
    """(CPU seconds, summed RSS bytes) of the sandbox process and its children, from /proc."""
    state = SandboxState.load(SandboxPaths.for_env(env, stacks.resolve().name))
    if state is None or not state.server_pid:
        return None
    ticks = 100.0
    cpu, rss = 0.0, 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            pid, ppid = int(proc.name), int(stat[1])
            if state.server_pid not in (pid, ppid):
                continue
            cpu += (int(stat[11]) + int(stat[12])) / ticks
            rss += int(stat[21]) * 4096
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def _cpu_snapshot(env: str) -> Counter[str] | None:
    """CPU seconds so far by process of the running sandbox (``tapharness.cpu``), or None without one."""
    paths = SandboxPaths.for_env(env, stacks.resolve().name)
    state = SandboxState.load(paths)
    if state is None or not state.server_pid:
        return None
    return cpu.snapshot(state.server_pid, paths.base)


def _print_cpu(before: Counter[str] | None, env: str, events: int) -> None:
    """The CPU the run took by process, per 1,000 events (a table after the measures)."""
    after = _cpu_snapshot(env)
    if before is None or after is None:
        return
    print(f"\nCPU by process over the run ({events} events):\n")
    print("\n".join(cpu.table(cpu.by_role(before, after), events)))


def _sandbox_requests(target: Target) -> Counter[str]:
    """Requests the sandbox's AWS endpoint has served so far, by service and operation."""
    return Counter(target.control("GET", "requests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to offer the events over")
    parser.add_argument("--events-per-viewer", type=int, default=6)
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait after the last send")
    args = parser.parse_args(argv)
    if args.events_per_viewer < 3:
        parser.error("--events-per-viewer must be at least 3 (watch, pause, complete)")
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[load +{time.monotonic() - started:6.1f}s] {message}", flush=True)

    os.environ.setdefault(ENV_VAR, args.env)
    target = load_target()
    rate = args.events / args.duration
    ordered, by_viewer = plan_events(args.events, args.events_per_viewer, rate)
    say(f"{len(ordered)} events from {len(by_viewer)} viewers at {rate:.0f}/s against {target.describe()}")
    usage_before = _sandbox_usage(args.env) if target.is_sandbox else None
    cpu_before = _cpu_snapshot(args.env) if target.is_sandbox else None
    requests_before = _sandbox_requests(target) if target.is_sandbox else None
    gc_at_start = target.control("GET", "health")["gc"] if target.is_sandbox else None
    ledger = Ledger()
    sending = threading.Event()
    sending.set()
    peak_rss = [0]
    accounting = threading.Thread(target=_account_until_done, daemon=True, args=(
        target, by_viewer, ledger, sending, args, say, peak_rss))
    accounting.start()
    send_seconds = offer(target, ordered, args.clients, say)
    sending.clear()
    accepted = [e for e in ordered if e.status == 202]
    completions = [e for e in accepted if e.route == "complete"]
    last_send = max(e.sent for e in ordered)
    say(f"sent in {send_seconds:.1f}s: {len(accepted)} accepted, {len(ordered) - len(accepted)} refused or failed")
    accounting.join()
    settled = time.monotonic() - last_send
    count_duplicates(target, by_viewer, ledger)

    latencies = [e.latency for e in accepted]
    by_id = {e.event_id: e for e in ordered}
    last_of = {v: events[-1] for v, events in by_viewer.items()}
    lags = {
        "user_activity item": [seen - by_id[i].sent for i, seen in ledger.items.items()],
        "user_activity SUMMARY": [seen - last_of[v].sent for v, seen in ledger.summaries.items()],
        "Aurora content_stats": [seen - by_id[i].sent for i, seen in ledger.completions.items()],
        "user_recommendations": [seen - last_of[v].sent for v, seen in ledger.recommendations.items()],
    }
    lost = (len(accepted) - len(ledger.items)) + (len(completions) - len(ledger.completions))
    duplicates = ledger.duplicate_items + ledger.extra_views
    print("\n| measure | value |\n|---|---|")
    print(f"| offered | {len(ordered)} events in {send_seconds:.1f} s = {len(ordered) / send_seconds:.1f}/s "
          f"(target {rate:.1f}/s) |")
    print(f"| accepted | {len(accepted)} = {len(accepted) / send_seconds:.1f}/s |")
    print(f"| API latency p50 / p99 | {_percentile(latencies, 0.5):.3f} s / {_percentile(latencies, 0.99):.3f} s |")
    for stage, values in lags.items():
        print(f"| lag to {stage} p50 / p99 | {_percentile(values, 0.5):.1f} s / {_percentile(values, 0.99):.1f} s "
              f"({len(values)} seen) |")
    viewers = {e.viewer for e in accepted}
    complete = (lost == 0 and len(ledger.summaries) == len(viewers) and len(ledger.recommendations) == len(viewers))
    print(f"| all accounted for in every store | {'yes' if complete else 'NO'}, "
          f"{settled:.0f} s after the last send |")
    print(f"| lost (not seen {args.settle:.0f} s after the last send) | {lost} |")
    print(f"| duplicated | {duplicates} |")
    if usage_before and (after := _sandbox_usage(args.env)):
        wall = time.monotonic() - started
        print(f"| sandbox CPU | {after[0] - usage_before[0]:.0f} s in {wall:.0f} s "
              f"({(after[0] - usage_before[0]) / wall:.2f} cores) |")
        print(f"| sandbox peak RSS | {peak_rss[0] / 2**20:.0f} MiB (the process and its children: function "
              "workers, Redis, PostgreSQL) |")
    if target.is_sandbox:
        gc_before, gc_after = gc_at_start, target.control("GET", "health")["gc"]
        print(f"| sandbox garbage collection | {gc_after['collections'] - gc_before['collections']} collections, "
              f"{gc_after['total_pause_s'] - gc_before['total_pause_s']:.2f} s paused; longest pause since the "
              f"sandbox started {gc_after['longest_pause_s'] * 1000:.0f} ms |")
    if requests_before is not None:
        served = _sandbox_requests(target) - requests_before
        top = ", ".join(f"{label} {count / len(ordered):.2f}" for label, count in served.most_common(8))
        print(f"| AWS requests per event | {sum(served.values()) / len(ordered):.1f} (the benchmark's own "
              f"polling included); most: {top} |")
    _print_cpu(cpu_before, args.env, len(ordered))
    return 0 if accepted and complete and duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
