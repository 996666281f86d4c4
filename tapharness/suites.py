"""``make test``: every stack's unit suite, run side by side so both cores stay busy.

The repository root's suite (the harness and the video-streaming stack) runs on three xdist
workers, a test file's tests on one of them (module-scoped fixtures such as a sandbox's test API are
made once, not once per worker that meets the module), files handed out in collection order with
the slow ones first (conftest.py), so that the long mostly-waiting deploy of a foreign stack runs
beside the rest instead of alone at the end; a third worker because that deploy leaves its worker
idle most of the time; each stack
under ``stacks/`` runs in a process of its own (their test packages share names, and
``TAPSTACK_STACK`` selects the stack). Each suite's output is printed whole when it ends, then a
table of the suites and the plain total line.

Bytecode (the project's modules, and pytest's rewritten test modules) is kept under the cache
(``PYTHONPYCACHEPREFIX``), never in the tree, even where the environment turns writing it off:
recompiling every module in every worker was a tenth of the suite's CPU.

    python -m tapharness.suites [--only NAME ...] [-- extra pytest arguments]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tapharness import stacks, toolchain

OUTCOME = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)\b")


@dataclass
class Suite:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """The counts of pytest's closing line."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.startswith("=")]
        found: dict[str, int] = {}
        for number, outcome in OUTCOME.findall(lines[-1] if lines else ""):
            found["errors" if outcome.startswith("error") else outcome] = int(number)
        return found


def suites(only: list[str], extra: list[str], logs: Path) -> list[Suite]:
    python = [sys.executable, "-m", "pytest"]
    base = {**os.environ, "PYTHONPYCACHEPREFIX": str(toolchain.CACHE / "pycache")}
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    found = []
    for stack in stacks.registry().values():
        if only and stack.name not in only:
            continue
        tests = stack.root / "tests" / "unit"
        if not tests.is_dir():
            continue
        if stack.root == stacks.REPO_ROOT:
            command = [*python, str(tests.relative_to(stacks.REPO_ROOT)), "-n", "3", "--dist", "loadfile", "--no-loadscope-reorder", *extra]
        else:
            command = [*python, str(tests.relative_to(stacks.REPO_ROOT)), "-p", "no:xdist", *extra]
        found.append(Suite(stack.name, command, {**base, stacks.ENV_VAR: stack.name}, logs / f"{stack.name}.log"))
    return found


def _wait_all(selected: list[Suite]) -> dict[str, int]:
    codes: dict[str, int] = {}
    try:
        while len(codes) < len(selected):
            for suite in selected:
                assert suite.process is not None
                if suite.name not in codes and (code := suite.process.poll()) is not None:
                    codes[suite.name] = code
                    suite.seconds = time.monotonic() - suite.started
            time.sleep(0.2)
    finally:  # interrupted: no suite goes on running without us
        for suite in selected:
            if suite.process is not None and suite.process.poll() is None:
                suite.process.terminate()
                suite.process.wait()
    return codes


def run(selected: list[Suite]) -> int:
    for suite in selected:
        suite.started = time.monotonic()
        with suite.log.open("wb") as out:
            suite.process = subprocess.Popen(suite.command, cwd=stacks.REPO_ROOT, env=suite.env, stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    codes = _wait_all(selected)
    for suite in selected:
        print(f"\n== unit suite of {suite.name}: {' '.join(suite.command[1:])}", flush=True)
        sys.stdout.write(suite.log.read_text(errors="replace"))
    print("\n== unit suites")
    totals = {"passed": 0, "failed": 0}
    for suite in selected:
        counts = suite.counts()
        for outcome in totals:
            totals[outcome] += counts.get(outcome, 0)
        totals["failed"] += counts.get("errors", 0)
        state = "ok" if codes[suite.name] == 0 else f"FAILED (exit {codes[suite.name]})"
        print(f"{suite.name:<18} {suite.seconds:6.1f} s  {counts}  {state}")
    print(f"total: {totals['passed']} passed, {totals['failed']} failed")
    return 0 if all(code == 0 for code in codes.values()) and selected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tapharness.suites", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="STACK", help="run only this stack's suite")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to every pytest run")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(stacks.registry())
    if unknown:
        parser.error(f"no stack {', '.join(sorted(unknown))}: the stacks are {', '.join(stacks.registry())}")
    with tempfile.TemporaryDirectory(prefix="tapstack-suites-") as logs:
        return run(suites(args.only, args.pytest_args, Path(logs)))


if __name__ == "__main__":
    sys.exit(main())
