"""Where a sandbox run's CPU goes: CPU seconds by process, read from /proc.

A sandbox is its server process (moto, the IAM gate, pollers, front doors), the function workers
it starts (one process per execution environment, named by ``AWS_LAMBDA_FUNCTION_NAME``), and the
Redis and PostgreSQL it runs (PostgreSQL's processes leave the server's tree when ``pg_ctl``
detaches them, so they are found by the data directory in their command line). ``snapshot`` reads
each one's user + system time, plus what its exited children left in it (a worker the runner
retired counts towards the server); ``by_role`` of two snapshots is the CPU spent in between.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    name: str
    cpu_s: float
    children_cpu_s: float
    cmdline: str


def _processes() -> dict[int, Process]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        found[int(entry.name)] = Process(int(entry.name), int(fields[1]), name,
                                         (int(fields[11]) + int(fields[12])) / TICKS,
                                         (int(fields[13]) + int(fields[14])) / TICKS, cmdline)
    return found


def _function_name(pid: int) -> str | None:
    try:
        for item in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
            if item.startswith(b"AWS_LAMBDA_FUNCTION_NAME="):
                return item.split(b"=", 1)[1].decode()
    except OSError:
        return None
    return None


def _role(process: Process, server_pid: int, client_pid: int) -> str:
    if process.pid == server_pid:
        return "sandbox server"
    if process.pid == client_pid:
        return "load client"
    if process.name.startswith("redis"):
        return "redis"
    if process.name.startswith(("postgres", "postmaster")) or "/postgres" in process.cmdline:
        return "postgresql"
    function = _function_name(process.pid)
    return f"function {function}" if function else f"other ({process.name})"


def snapshot(server_pid: int, sandbox_dir: Path, client_pid: int | None = None) -> Counter[str]:
    """CPU seconds so far by role: the server, its descendants, the processes whose command line
    names ``sandbox_dir`` (its PostgreSQL), and the client (this process unless said)."""
    client_pid = os.getpid() if client_pid is None else client_pid
    processes = _processes()
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    # The server's tree, and the trees of what names the sandbox's directory (PostgreSQL's postmaster
    # and the backends it forks, whose own command lines name no directory).
    members: set[int] = set()
    stack = [server_pid, *(p.pid for p in processes.values() if str(sandbox_dir) in p.cmdline)]
    while stack:
        pid = stack.pop()
        if pid in processes and pid not in members:
            members.add(pid)
            stack.extend(children.get(pid, []))
    members.add(client_pid)
    totals: Counter[str] = Counter()
    for pid in members & set(processes):
        process = processes[pid]
        role = _role(process, server_pid, client_pid)
        totals[role] += process.cpu_s
        if process.pid == server_pid:
            totals["sandbox server: retired workers"] += process.children_cpu_s
    return totals


def by_role(before: Counter[str], after: Counter[str]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by role, most first (a process that ended in
    between is left out, except what its parent collected)."""
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    return dict(sorted(((role, s) for role, s in spent.items() if s > 0.005), key=lambda item: -item[1]))


def table(spent: dict[str, float], events: int) -> list[str]:
    """Markdown rows: role, CPU seconds, seconds per 1,000 events; the sandbox's own share against
    the functions'."""
    rows = ["| process | CPU s | CPU s per 1,000 events |", "|---|---|---|"]
    per = 1000 / events if events else 0.0
    for role, seconds in spent.items():
        rows.append(f"| {role} | {seconds:.1f} | {seconds * per:.2f} |")
    functions = sum(s for role, s in spent.items() if role.startswith("function "))
    sandbox = sum(s for role, s in spent.items() if role.startswith("sandbox server"))
    rows.append(f"| all functions | {functions:.1f} | {functions * per:.2f} |")
    rows.append(f"| sandbox's own (server) | {sandbox:.1f} | {sandbox * per:.2f} |")
    return rows
