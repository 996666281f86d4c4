"""CPU by process: a sandbox's server, its function workers by name, what names its directory, and
the client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tapharness import cpu

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end:\n    pass\n"
HOLD = "import time\ntime.sleep(30)\n"
# A stand-in server: starts one "function worker" that burns CPU, burns some itself, then waits.
SERVER = (
    "import os, subprocess, sys\n"
    "subprocess.Popen([sys.executable, '-c', {worker!r}], env={{**os.environ, 'AWS_LAMBDA_FUNCTION_NAME': 'scorer'}})\n"
    "{own}" + HOLD
)


@contextmanager
def process_group(*argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, killed with everything it started."""
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def spent_once(snapshot: Callable[[], Counter[str]], enough: Callable[[dict[str, float]], bool],
               timeout: float = 60.0) -> dict[str, float]:
    """CPU by role since the first snapshot, polled until ``enough`` (a loaded machine is slow)."""
    before = snapshot()
    deadline = time.monotonic() + timeout
    while True:
        spent = cpu.by_role(before, snapshot())
        if enough(spent) or time.monotonic() > deadline:
            return spent
        time.sleep(0.1)


def test_cpu_is_split_by_server_and_function(tmp_path: Path) -> None:
    script = SERVER.format(worker=BURN.format(seconds=0.6) + HOLD, own=BURN.format(seconds=0.3))
    with process_group(sys.executable, "-c", script) as server:
        spent = spent_once(lambda: cpu.snapshot(server.pid, tmp_path),
                           lambda s: s.get("function scorer", 0) >= 0.55 and s.get("sandbox server", 0) >= 0.25)
    assert spent.get("function scorer", 0) >= 0.55 and spent.get("sandbox server", 0) >= 0.25, spent
    [functions] = [row for row in cpu.table(spent, events=2000) if row.startswith("| all functions |")]
    assert float(functions.split("|")[3]) == round(spent["function scorer"] / 2, 2)


def test_a_process_that_names_the_sandbox_directory_counts_with_what_it_forks(tmp_path: Path) -> None:
    # PostgreSQL's postmaster leaves the server's tree (pg_ctl detaches it) and names its data
    # directory; its backends name nothing.
    parent = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {BURN.format(seconds=0.4) + HOLD!r}])\n"
    with process_group(sys.executable, "-c", HOLD) as server, \
            process_group(sys.executable, "-c", parent + HOLD, str(tmp_path)):
        spent = spent_once(lambda: cpu.snapshot(server.pid, tmp_path), lambda s: s.get("other (python)", 0) >= 0.35)
    assert spent.get("other (python)", 0) >= 0.35, spent
