"""Where a sandbox keeps its files, and the JSON state file that says what is running.

Layout (``<repo>/.sandbox/<stack>/<env>/``, git-ignored; ``TAPSTACK_SANDBOX_DIR`` overrides the
root), so every stack's environments have their own:

    state.json      ports, pids and paths of the running sandbox (written by ``up``)
    outputs.json    what the integration suite reads (``tofu output -json`` + a ``sandbox`` entry)
    work/           the scratch working copy of lib/ (``.terraform`` and the tofu state live here)
    logs/           server.log (moto, pollers, front door), tofu-*.log, redis/postgres logs
    lambda-cache/   unzipped function code and layers, keyed by sha256
    services/       Redis and PostgreSQL data directories
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tapharness.stacks import DEFAULT_STACK, REPO_ROOT

REGION = "us-east-1"


def sandbox_root() -> Path:
    """The directory that holds one sub-directory per stack, and in it one per environment."""
    return Path(os.environ.get("TAPSTACK_SANDBOX_DIR", REPO_ROOT / ".sandbox"))



def local_url(port: int) -> str:
    """The URL of a sandbox port on the loopback address."""
    return f"http://127.0.0.1:{port}"


def call_control(control_url: str, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
    """``method <control_url>/<path>`` (a ``/_sandbox/`` endpoint) with a JSON body; its JSON answer
    (an HTTPError on 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{control_url}/{path}", method=method, data=data)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass(frozen=True)
class SandboxPaths:
    """The files of one environment's sandbox."""

    base: Path

    @classmethod
    def for_env(cls, env: str, stack: str = DEFAULT_STACK) -> SandboxPaths:
        return cls(sandbox_root() / stack / env)

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    @property
    def outputs_file(self) -> Path:
        return self.base / "outputs.json"

    @property
    def work_dir(self) -> Path:
        return self.base / "work"

    @property
    def logs_dir(self) -> Path:
        return self.base / "logs"

    @property
    def lambda_cache(self) -> Path:
        return self.base / "lambda-cache"

    @property
    def services_dir(self) -> Path:
        return self.base / "services"


@dataclass
class SandboxState:
    """What ``up`` started; ``status`` and ``down`` read it back."""

    env: str
    region: str
    moto_port: int
    gateway_port: int
    server_pid: int | None = None
    redis_port: int | None = None
    postgres_port: int | None = None
    applied: bool = False
    api_url: str | None = None
    tofu_vars: dict[str, str] = field(default_factory=dict)
    stack: str = DEFAULT_STACK
    stack_dir: str = str(REPO_ROOT)

    @property
    def endpoint_url(self) -> str:
        return local_url(self.moto_port)

    @property
    def gateway_url(self) -> str:
        return local_url(self.gateway_port)

    def save(self, paths: SandboxPaths) -> None:
        paths.base.mkdir(parents=True, exist_ok=True)
        tmp = paths.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(paths.state_file)

    @classmethod
    def load(cls, paths: SandboxPaths) -> SandboxState | None:
        if not paths.state_file.exists():
            return None
        saved = json.loads(paths.state_file.read_text())
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (and is not a zombie of ours)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("State:"):
                return "zombie" not in line
    return True
