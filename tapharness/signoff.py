"""Release sign-off: the unit suite, then per environment the integration suite against the sandbox.

``python -m tapharness.signoff [--stack NAME] [--env dev --env staging ...] [--suites unit,integration]``

For one stack (``tapharness.stacks``; default ``$TAPSTACK_STACK`` or the repository root's),
its suites under ``<stack root>/tests`` with ``TAPSTACK_STACK`` set and its sandbox
(``--stack``); reports under ``reports/`` (``reports/<stack>/`` for a stack under ``stacks/``).

1. unit: ``pytest tests/unit`` once (it plans every environment itself) →
   ``reports/unit/junit.xml``;
2. per environment: ``python -m tapharness.sandbox up --env <env>`` (with the stack's
   ``integration_vars`` from its ``sandbox.yaml``),
   ``pytest tests/integration -m integration`` against it (``TAPSTACK_ENV=<env>``) →
   ``reports/<env>/integration.xml``, then ``down`` (also after a failure, unless ``--keep``);
   the sandbox's own output goes to ``reports/<env>/sandbox-up.log`` / ``sandbox-down.log``;
3. ``reports/signoff.md``: verdict, counts and durations per suite and environment, step
   durations, failures and skips with their messages, per-flow latencies.

Exit status 0 only when every step ran and no test failed or errored.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from tapharness import stacks
from tapharness.deployed import NoTarget, TargetError, load_target
from tapharness.plan import ENVS
from tapharness.sandbox.adapter import Adapter
from tapharness.sandbox.state import REPO_ROOT

REPORTS = REPO_ROOT / "reports"
GAPS = REPO_ROOT / "docs" / "emulation-gaps.md"
LATENCY_PROPERTY = "latency:"
# The integration tests mostly wait (for pollers, redeliveries), so more workers than cores pay off.
INTEGRATION_WORKERS = "4"
UNIT_TIMEOUT_S = 1800
SANDBOX_TIMEOUT_S = 1200
INTEGRATION_TIMEOUT_S = 1800


@dataclass
class Step:
    """One command of the sign-off and how it went."""

    name: str
    env: str
    seconds: float = 0.0
    returncode: int | None = None
    log: Path | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class SuiteResult:
    """The counts of one JUnit XML file."""

    suite: str
    env: str
    xml: Path
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, test id, message)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def read_junit(path: Path, suite: str, env: str) -> SuiteResult:
    """Counts, failures, skips and ``latency:*`` properties of a pytest JUnit XML file."""
    result = SuiteResult(suite, env, path)
    root = ElementTree.parse(path).getroot()
    for testsuite in root.iter("testsuite"):
        result.tests += int(testsuite.get("tests", 0))
        result.failures += int(testsuite.get("failures", 0))
        result.errors += int(testsuite.get("errors", 0))
        result.skipped += int(testsuite.get("skipped", 0))
        result.seconds += float(testsuite.get("time", 0))
        for case in testsuite.iter("testcase"):
            test_id = f"{case.get('classname')}::{case.get('name')}"
            for kind in ("failure", "error", "skipped"):
                for problem in case.findall(kind):
                    result.problems.append((kind, test_id, _first_line(problem.get("message") or problem.text)))
            for prop in case.iter("property"):
                name = prop.get("name", "")
                if name.startswith(LATENCY_PROPERTY):
                    result.latencies[name[len(LATENCY_PROPERTY):]].append(float(prop.get("value", "nan")))
    return result


def run_step(step: Step, command: list[str], timeout: float, env: dict[str, str] | None = None) -> Step:
    """Run a command, echoing its output and keeping it in ``step.log``; fills in time and status."""
    assert step.log is not None
    step.log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n== {step.name} ({step.env}): {' '.join(command)}", flush=True)
    started = time.monotonic()
    with step.log.open("w") as log, subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                                     stderr=subprocess.STDOUT, text=True) as process:
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        step.returncode = process.wait()
        watchdog.cancel()
    step.seconds = time.monotonic() - started
    if step.seconds >= timeout:
        step.note = f"killed after {timeout:.0f}s"
    print(f"== {step.name} ({step.env}): exit {step.returncode} after {step.seconds:.0f}s {step.note}", flush=True)
    return step


def pytest_command(paths: list[str], xml: Path, suite_name: str, workers: str, extra: list[str]) -> list[str]:
    # loadfile: a file's tests run on one worker, one after another (tests that share a stand-in's
    # behaviour live in one file). xdist 3.8's loadgroup no longer groups under pytest 9: it renames
    # item._nodeid, which pytest 9's nodeid no longer reads, so xdist_group marks were ignored.
    return [sys.executable, "-m", "pytest", *paths, "-n", workers, "--dist", "loadfile", "-p", "no:cacheprovider",
            f"--junitxml={xml}", "-o", f"junit_suite_name={suite_name}", *extra]


@dataclass
class SignOff:
    """Runs the steps and keeps what they produced."""

    reports: Path
    workers: str
    keep: bool
    sandbox_vars: tuple[str, ...]
    stack: stacks.Stack = field(default_factory=stacks.resolve)
    steps: list[Step] = field(default_factory=list)
    suites: list[SuiteResult] = field(default_factory=list)
    iam: dict[str, dict] = field(default_factory=dict)  # env -> the sandbox's IAM report
    network: dict[str, dict] = field(default_factory=dict)  # env -> the sandbox's network report
    alarms: dict[str, list[dict]] = field(default_factory=dict)  # env -> the sandbox's alarms (/_sandbox/alarms)

    def _suite(self, step: Step, xml: Path, suite: str) -> None:
        if xml.exists():
            self.suites.append(read_junit(xml, suite, step.env))
        elif step.ok:
            step.note = f"no JUnit XML at {xml}"
            step.returncode = step.returncode or 1

    @property
    def _env(self) -> dict[str, str]:
        """The environment of every command: this stack, and no outputs file given from outside."""
        return {k: v for k, v in os.environ.items() if k != "TAPSTACK_OUTPUTS"} | {stacks.ENV_VAR: self.stack.name}

    def _tests(self, suite: str) -> str:
        path = self.stack.root / "tests" / suite
        return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)

    def unit(self) -> None:
        xml = self.reports / "unit" / "junit.xml"
        xml.unlink(missing_ok=True)
        step = Step("unit suite", "all", log=self.reports / "unit" / "pytest.log")
        self.steps.append(run_step(step, pytest_command([self._tests("unit")], xml, "unit", "auto", []),
                                   UNIT_TIMEOUT_S, env=self._env))
        self._suite(step, xml, "unit")

    def integration(self, env: str) -> None:
        directory = self.reports / env
        xml = directory / "integration.xml"
        xml.unlink(missing_ok=True)
        sandbox = [sys.executable, "-m", "tapharness.sandbox"]
        stack = ["--stack", self.stack.name]
        up_args = [arg for var in self.sandbox_vars for arg in ("--var", var)]
        up = run_step(Step("sandbox up", env, log=directory / "sandbox-up.log"),
                      [*sandbox, "up", *stack, "--env", env, *up_args, *(["--keep"] if self.keep else [])],
                      SANDBOX_TIMEOUT_S, env=self._env)
        self.steps.append(up)
        if up.ok:
            suite = run_step(Step("integration suite", env, log=directory / "pytest.log"),
                             pytest_command([self._tests("integration")], xml, f"integration-{env}", self.workers,
                                            ["-m", "integration"]), INTEGRATION_TIMEOUT_S,
                             env=self._env | {"TAPSTACK_ENV": env})
            self.steps.append(suite)
            self._suite(suite, xml, "integration")
            self._iam_report(env, directory)
            self._network_report(env, directory)
            self._alarms_report(env, directory)
        failed = not all(step.ok for step in self.steps if step.env == env)
        if self.keep and failed:
            print(f"== {env}: left running for inspection (--keep); "
                  f"`python -m tapharness.sandbox down --stack {self.stack.name} --env {env}` when done", flush=True)
            return
        self.steps.append(run_step(Step("sandbox down", env, log=directory / "sandbox-down.log"),
                                   [*sandbox, "down", *stack, "--env", env], SANDBOX_TIMEOUT_S, env=self._env))

    def _iam_report(self, env: str, directory: Path) -> None:
        report = self._sandbox_report("IAM report", "iam", env, directory)
        if report is not None:
            self.iam[env] = report

    def _network_report(self, env: str, directory: Path) -> None:
        report = self._sandbox_report("network report", "network", env, directory)
        if report is not None:
            self.network[env] = report

    def _sandbox_report(self, name: str, command: str, env: str, directory: Path) -> dict | None:
        """``python -m tapharness.sandbox <command> --json`` as a step (it exits 1 on a denial or a
        refused path, which fails the sign-off), kept in ``<command>.json``."""
        step = run_step(Step(name, env, log=directory / f"{command}.log"),
                        [sys.executable, "-m", "tapharness.sandbox", command, "--stack", self.stack.name, "--env", env,
                         "--json"], SANDBOX_TIMEOUT_S, env=self._env)
        self.steps.append(step)
        assert step.log is not None
        try:
            report = json.loads(step.log.read_text())
        except ValueError:
            step.note = f"no {name}"
            step.returncode = step.returncode or 1
            return None
        (directory / f"{command}.json").write_text(json.dumps(report, indent=2))
        return report

    def _alarms_report(self, env: str, directory: Path) -> None:
        """Each alarm of the run: its state, its changes, whether its metric was ever reported (after
        one last evaluation), in alarms.json and the summary."""
        started = time.monotonic()
        step = Step("alarms report", env)
        try:
            target = load_target({stacks.ENV_VAR: self.stack.name, "TAPSTACK_ENV": env})
            target.control("POST", "alarms")
            self.alarms[env] = target.control("GET", "alarms")["alarms"]
            (directory / "alarms.json").write_text(json.dumps(self.alarms[env], indent=2))
            step.returncode = 0
        except (NoTarget, TargetError, OSError, ValueError, KeyError) as exc:
            step.returncode, step.note = 1, f"no alarms report: {exc}"
        step.seconds = time.monotonic() - started
        self.steps.append(step)

    @property
    def passed(self) -> bool:
        """Every step ran, nothing failed, and every flow of the sandbox was exercised (no skips there)."""
        return (all(step.ok for step in self.steps)
                and all(s.failures == 0 and s.errors == 0 and s.passed > 0 for s in self.suites)
                and all(s.skipped == 0 for s in self.suites if s.suite == "integration"))


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def render(signoff: SignOff, started: datetime, seconds: float) -> str:
    """The markdown summary."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") not in ("", "unknown") else ""
    lines = [
        f"# Release sign-off: {signoff.stack.name}",
        "",
        (f"**{'PASS' if signoff.passed else 'FAIL'}** · {started:%Y-%m-%d %H:%M} UTC · commit {commit}{dirty} · "
        f"{seconds / 60:.1f} min"),
        "",
        "## Suites",
        "",
        "| suite | env | tests | passed | failed | errors | skipped | duration |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in signoff.suites:
        lines.append(f"| {s.suite} | {s.env} | {s.tests} | {s.passed} | {s.failures} | {s.errors} | {s.skipped} "
                     f"| {s.seconds:.0f} s |")
    lines += ["", "## Steps", "", "| step | env | exit | duration | log |", "|---|---|---:|---:|---|"]
    for step in signoff.steps:
        log = step.log.relative_to(signoff.reports) if step.log else ""
        note = f" ({step.note})" if step.note else ""
        lines.append(f"| {step.name} | {step.env} | {step.returncode}{note} | {step.seconds:.0f} s | {log} |")
    failures = [(s, kind, test, message) for s in signoff.suites for kind, test, message in s.problems
                if kind != "skipped"]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {s.suite}/{s.env} `{test}` ({kind}): {message}" for s, kind, test, message in failures]
    skips: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for s in signoff.suites:
        for kind, test, message in s.problems:
            if kind == "skipped":
                skips[(s.suite, s.env, message)].append(test)
    if skips:
        lines += ["", "## Skipped (a skip in an integration suite fails the sign-off)", ""]
        lines += [f"- {suite}/{env}, {len(tests)} test(s), e.g. `{tests[0]}`: {message}"
                  for (suite, env, message), tests in skips.items()]
    lines += _iam_lines(signoff)
    lines += _network_lines(signoff)
    lines += _alarm_lines(signoff)
    latencies = [(s.env, flow, values) for s in signoff.suites for flow, values in sorted(s.latencies.items())]
    if latencies:
        lines += ["", "## Per-flow latency (request to observed outcome, seconds)", "",
                  "| env | flow | n | min | median | max |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {env} | {flow} | {len(v)} | {min(v):.2f} | {statistics.median(v):.2f} | {max(v):.2f} |"
                  for env, flow, v in latencies]
    lines += _gap_lines()
    return "\n".join(lines) + "\n"


def _iam_lines(signoff: SignOff) -> list[str]:
    lines: list[str] = []
    for env, report in signoff.iam.items():
        principals = report["principals"]
        used = sum(len(p["used"]) for p in principals)
        unused = sum(len(p["unused"]) for p in principals)
        heading = (f"## IAM ({env}): {report['denials']} denied, {used} (action, resource) pairs used, "
                   f"{unused} granted actions never used")
        lines += ["", heading, ""]
        denied = [(p["principal"], d) for p in principals for d in p["denied"]]
        if denied:
            lines += ["| principal | action | resource | call | reason |", "|---|---|---|---|---|"]
            lines += [f"| {who} | {d['action']} | {d['resource']} | {d['call']} | {d['reason']} |" for who, d in denied]
        never = {p["principal"].rsplit("/", 1)[-1]: sorted({u["action"] for u in p["unused"]})
                 for p in principals if p["unused"]}
        if never:
            lines += ["", ("Granted, never used in this run (exercised by AWS services the sandbox does not run, "
                           "or by flows the suite did not reach; `iam.json` has the resources):"), ""]
            lines += [f"- {role}: {', '.join(actions)}" for role, actions in sorted(never.items())]
    return lines


def _network_lines(signoff: SignOff) -> list[str]:
    lines: list[str] = []
    for env, report in signoff.network.items():
        functions = report["functions"]
        used = sum(len(f["used"]) for f in functions.values())
        lines += ["", f"## Network ({env}): {report['refused']} refused path(s), {used} path(s) used", ""]
        refused = [(name, target, r) for name, f in sorted(functions.items()) for target, r in sorted(f["refused"].items())]
        if refused:
            lines += ["| function | destination | attempts | missing |", "|---|---|---:|---|"]
            lines += [f"| {name} | {target} | {r['attempts']} | {r['missing']} |" for name, target, r in refused]
        ways = sorted({(target, via) for f in functions.values() for target, via in f["used"].items()})
        if ways:
            lines += ["", "| destination | path |", "|---|---|"]
            lines += [f"| {target} | {via} |" for target, via in ways]
    return lines


def _alarm_lines(signoff: SignOff) -> list[str]:
    lines: list[str] = []
    for env, alarms in signoff.alarms.items():
        fired = [a for a in alarms if any(c["to"] == "ALARM" for c in a["changes"])]
        silent = sorted(a["alarm"] for a in alarms if not a["metric_reported"])
        lines += ["", f"## Alarms ({env}): {len(fired)} of {len(alarms)} fired during the run", ""]
        if fired:
            lines += ["| alarm | first ALARM | state at the end |", "|---|---|---|"]
            lines += [f"| {a['alarm']} | {next(c['at'] for c in a['changes'] if c['to'] == 'ALARM')} | {a['state']} |"
                      for a in fired]
        if silent:
            lines += ["", ("Never reported a datapoint in this run (a metric the sandbox does not publish, or no flow "
                           "made it): ") + ", ".join(silent)]
    return lines


def _gap_lines() -> list[str]:
    """The top-level bullets of docs/emulation-gaps.md: what a sandbox PASS does not prove."""
    bullets = [line[2:].strip() for line in GAPS.read_text().splitlines() if line.startswith("- ")]
    return ["", f"## Not emulated by the sandbox ({GAPS.relative_to(REPO_ROOT)})", "", *[f"- {b}" for b in bullets]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tapharness.signoff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default=None, help=f"the stack (default: ${stacks.ENV_VAR} or {stacks.DEFAULT_STACK})")
    parser.add_argument("--env", action="append", choices=ENVS, help="environment (repeatable; default: all)")
    parser.add_argument("--suites", default="unit,integration", help="comma-separated: unit, integration")
    parser.add_argument("--reports", type=Path, default=None,
                        help="output directory (default: reports/, reports/<stack>/ for a stack under stacks/)")
    parser.add_argument("--workers", default=INTEGRATION_WORKERS,
                        help=f"pytest-xdist workers of the integration suite (default: {INTEGRATION_WORKERS})")
    parser.add_argument("--keep", action="store_true", help="leave a sandbox running after a failure")
    args = parser.parse_args(argv)
    suites = {s.strip() for s in args.suites.split(",") if s.strip()}
    unknown = suites - {"unit", "integration"}
    if unknown or not suites:
        parser.error(f"--suites takes unit and/or integration, got {args.suites!r}")

    try:
        stack = stacks.resolve(args.stack)
    except stacks.UnknownStack as exc:
        parser.error(str(exc))
    reports = args.reports or (REPORTS if stack.name == stacks.DEFAULT_STACK else REPORTS / stack.name)
    started, clock = datetime.now(UTC), time.monotonic()
    reports.mkdir(parents=True, exist_ok=True)
    integration_vars = tuple(f"{k}={v}" for k, v in sorted(Adapter.load(stack).integration_vars.items()))
    signoff = SignOff(reports.resolve(), args.workers, args.keep, integration_vars, stack)
    if "unit" in suites:
        signoff.unit()
    if "integration" in suites:
        for env in args.env or list(ENVS):
            signoff.integration(env)
    summary = reports / "signoff.md"
    summary.write_text(render(signoff, started, time.monotonic() - clock))
    print(f"\n{summary}:\n\n{summary.read_text()}", flush=True)
    return 0 if signoff.passed else 1


if __name__ == "__main__":
    sys.exit(main())
