"""Session fixtures shared by every suite: the toolchain, an offline AWS API, plans per environment."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from tapharness import plan as planlib
from tapharness import toolchain


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def toolchain_env() -> dict[str, str]:
    """TOFU_BIN and the CLI config of the local provider mirror (built by `make setup`)."""
    return toolchain.environment()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An in-process moto server answering the provider's calls during plans."""
    port = _free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def workspace_factory(tmp_path_factory: pytest.TempPathFactory, toolchain_env: dict[str, str],
                      moto_endpoint: str) -> Callable[[], planlib.Workspace]:
    """Creates the session's initialised working copy of lib/ on first use."""
    made: list[planlib.Workspace] = []

    def get() -> planlib.Workspace:
        if not made:
            made.append(planlib.Workspace(tmp_path_factory.mktemp("tf") / "lib",
                                          planlib.offline_aws_env(moto_endpoint)))
        return made[0]

    return get


@pytest.fixture(scope="session")
def workspace(workspace_factory: Callable[[], planlib.Workspace]) -> planlib.Workspace:
    return workspace_factory()


@pytest.fixture(scope="session")
def plan_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by all xdist workers of one run (they share the base temp dir's parent)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        return toolchain.CACHE / "runs" / run_id
    return tmp_path_factory.mktemp("plans")


@pytest.fixture(scope="session")
def plans(plan_cache_dir: Path,
          workspace_factory: Callable[[], planlib.Workspace]) -> Callable[[str], planlib.PlanSummary]:
    """plans(env) -> the PlanSummary of tfvars/<env>.tfvars, computed once per run."""
    memo: dict[str, planlib.PlanSummary] = {}

    def get(env: str) -> planlib.PlanSummary:
        if env not in memo:
            memo[env] = planlib.shared_plan(plan_cache_dir, env, workspace_factory)
        return memo[env]

    return get
