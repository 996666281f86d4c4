"""Session fixtures shared by every suite: the toolchain, an offline AWS API, plans per environment."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tapharness import plan as planlib
from tapharness import stacks, toolchain
from tapharness.deployed import NoTarget, Target, TargetError, load_target
from tapharness.offline_aws import moto_server


@pytest.fixture(scope="session")
def toolchain_env() -> dict[str, str]:
    """TOFU_BIN and the CLI config of the local provider mirror (built by `make setup`)."""
    return toolchain.environment()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (a process of its own) answering the provider's calls during plans."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def stack() -> stacks.Stack:
    """The stack under test: ``TAPSTACK_STACK``, or the repository root's."""
    return stacks.resolve()


@pytest.fixture(scope="session")
def workspace_factory(tmp_path_factory: pytest.TempPathFactory, toolchain_env: dict[str, str],
                      stack: stacks.Stack) -> Iterator[Callable[[], planlib.Workspace]]:
    """Creates the session's initialised working copy of the stack's lib/ on first use, with the
    offline AWS API it plans against (neither is started while every answer comes from the memo)."""
    made: list[planlib.Workspace] = []
    with contextlib.ExitStack() as servers:

        def get() -> planlib.Workspace:
            if not made:
                endpoint = servers.enter_context(moto_server())
                made.append(planlib.Workspace(tmp_path_factory.mktemp("tf") / "lib",
                                              planlib.offline_aws_env(endpoint), stack))
            return made[0]

        yield get


@pytest.fixture(scope="session")
def workspace(workspace_factory: Callable[[], planlib.Workspace], stack: stacks.Stack) -> planlib.Planner:
    """Plans and validation errors of the stack, from the memo while it is unchanged (``tapharness.memo``)."""
    return planlib.Planner(stack, workspace_factory)


@pytest.fixture(scope="session")
def plans(workspace: planlib.Planner) -> Callable[[str], planlib.PlanSummary]:
    """plans(env) -> the PlanSummary of the stack's tfvars/<env>.tfvars, computed once per stack content."""
    memo: dict[str, planlib.PlanSummary] = {}

    def get(env: str) -> planlib.PlanSummary:
        if env not in memo:
            memo[env] = workspace.plan(env)
        return memo[env]

    return get


@pytest.fixture(params=planlib.ENVS)
def plan(request: pytest.FixtureRequest, plans: Callable[[str], planlib.PlanSummary]) -> planlib.PlanSummary:
    """The plan of each environment in turn (tests using it run once per env)."""
    return plans(request.param)


@pytest.fixture
def dev(plans: Callable[[str], planlib.PlanSummary]) -> planlib.PlanSummary:
    return plans("dev")


@pytest.fixture(scope="session")
def target() -> Target:
    """The deployed stack an integration suite tests (``tapharness.deployed.load_target``): skipped
    with the reason when none is configured, an error when the configured one cannot be used."""
    try:
        return load_target()
    except NoTarget as reason:
        pytest.skip(f"no deployed stack to test: {reason}")
    except TargetError as error:
        pytest.fail(f"the configured target cannot be used: {error}", pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow run first. xdist hands each file to a worker in collection order; a long
    file handed out last would leave one worker running it alone while the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
