"""CPU by process: a sandbox's server, its function workers by name, and the client."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tapharness import cpu

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end:\n    pass\n"
# A stand-in server: starts one "function worker" that burns CPU, then burns some itself and waits.
SERVER = (
    "import os, subprocess, sys, time\n"
    "worker = subprocess.Popen([sys.executable, '-c', {burn!r}], env={{**os.environ, 'AWS_LAMBDA_FUNCTION_NAME': 'scorer'}})\n"
    + "{own}"
    + "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def test_cpu_is_split_by_server_function_and_client(tmp_path: Path) -> None:
    script = SERVER.format(burn=BURN.format(seconds=0.6) + "import time\ntime.sleep(30)\n",
                           own=BURN.format(seconds=0.3))
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        before = cpu.snapshot(server.pid, tmp_path)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        time.sleep(0.8)  # the worker finishes its burn
        spent = cpu.by_role(before, cpu.snapshot(server.pid, tmp_path))
    finally:
        server.kill()
        server.wait()
    assert spent["function scorer"] >= 0.5, spent
    assert spent["sandbox server"] >= 0.25, spent
    [functions] = [row for row in cpu.table(spent, events=2000) if row.startswith("| all functions |")]
    assert float(functions.split("|")[3]) == round(spent["function scorer"] / 2, 2)


def test_a_process_that_names_the_sandbox_directory_counts_with_what_it_forks(tmp_path: Path) -> None:
    # PostgreSQL's postmaster leaves the server's tree (pg_ctl detaches it) and names its data
    # directory; its backends name nothing.
    child = BURN.format(seconds=0.4) + "import time\ntime.sleep(3)\n"
    parent = ("import subprocess, sys, time\n"
              f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
              "print('ready', flush=True)\n"
              "time.sleep(30)\n")
    detached = subprocess.Popen([sys.executable, "-c", parent, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    unrelated_server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = cpu.snapshot(unrelated_server.pid, tmp_path)
        assert detached.stdout is not None and detached.stdout.readline().strip() == "ready"
        time.sleep(0.8)
        spent = cpu.by_role(before, cpu.snapshot(unrelated_server.pid, tmp_path))
    finally:
        for process in (detached, unrelated_server):
            process.kill()
            process.wait()
    assert spent.get("other (python)", 0.0) >= 0.35, spent
