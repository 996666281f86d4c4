"""A sandbox server in a process of its own (``python -m tapharness.sandbox serve``).

Everything the sandbox changes in moto (shims, model patches, the Lambda runner) and every
thread it runs (pollers, scheduler, gateway, replication) lives in that process only: ``up``
starts one detached, and the sandbox's unit tests start one per test worker, so no test process
ever carries a patched moto or a sandbox thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tapharness.sandbox.pollers import PollerSettings
from tapharness.sandbox.state import call_control, local_url
from tapharness.stacks import REPO_ROOT


class ServerFailed(RuntimeError):
    """The sandbox process exited or was not ready in time."""


def launch(arguments: Sequence[str], ready_file: Path, log_file: Path, timeout: float,
           detach: bool = False) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``serve`` with ``arguments``; returns the process and what it wrote to ``ready_file``
    (its ports and pid) once everything listens."""
    ready_file.unlink(missing_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tapharness.sandbox", "serve", *arguments, "--ready-file", str(ready_file)]
    if not detach:
        command.append("--exit-with-parent")  # stops when our end of its stdin closes (we exit, even killed)
    with log_file.open("ab") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL if detach else subprocess.PIPE, start_new_session=detach)
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None:
            raise ServerFailed(f"the sandbox process exited with {process.returncode}; see {log_file}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise ServerFailed(f"the sandbox process was not ready after {timeout:.0f}s; see {log_file}")
        time.sleep(0.05)
    return process, json.loads(ready_file.read_text())


class SandboxProcess:
    """A running sandbox server and its control API (``/_sandbox/...``)."""

    def __init__(self, process: subprocess.Popen[bytes], ready: dict[str, Any], log_file: Path) -> None:
        self.process = process
        self.ready = ready
        self.log_file = log_file

    @classmethod
    def start(cls, base: Path, poller_settings: PollerSettings | None = None, scheduler: bool = True,
              services: bool = False, timeout: float = 120.0) -> SandboxProcess:
        """A sandbox whose Lambda cache and log live under ``base``."""
        arguments = ["--cache-dir", str(base / "lambda-cache")]
        if poller_settings is not None:
            arguments += ["--poller-settings", json.dumps(asdict(poller_settings))]
        if not scheduler:
            arguments.append("--no-scheduler")
        arguments += ["--services-dir", str(base / "services")] if services else ["--no-services"]
        log_file = base / "server.log"
        process, ready = launch(arguments, base / "ready.json", log_file, timeout)
        return cls(process, ready, log_file)

    @property
    def endpoint_url(self) -> str:
        return local_url(self.ready["moto_port"])

    @property
    def gateway_url(self) -> str:
        return local_url(self.ready["gateway_port"])

    def control(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        """``method /_sandbox/<path>`` with a JSON body; the JSON answer (an HTTPError on 4xx/5xx)."""
        return call_control(f"{self.gateway_url}/_sandbox", method, path, body, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the server stops its workers, Redis and PostgreSQL before it exits."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
