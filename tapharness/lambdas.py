"""Run the Lambda packages in-process, the way Lambda imports them (tests and benchmarks)."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

from tapharness import stacks

# The Lambda packages of the stack under test (``TAPSTACK_STACK``, or the repository root's).
LAMBDAS = stacks.resolve().lambdas
_LAMBDAS_PREFIX = f"{LAMBDAS}/"
REGION = "us-east-1"

# The layer's top-level packages: tap_common (shared by every stack, in runtime/) and the stack's
# own *_common package, importable from these directories.
for directory in (stacks.COMMON_LAMBDAS, LAMBDAS):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

import tap_common.aws
import tap_common.cache
import tap_common.db
import tap_common.secrets


def _is_package_module(module: ModuleType) -> bool:
    # A package's modules are imported from the sys.path entry load_package puts there, so their
    # files start with LAMBDAS as it is spelt (no resolve(): this runs over every loaded module).
    file = getattr(module, "__file__", None)
    if not file or not file.startswith(_LAMBDAS_PREFIX):
        return False
    parent = Path(file).parent
    return parent.parent == LAMBDAS and not parent.name.endswith("_common")


def load_package(package: str, *modules: str) -> SimpleNamespace:
    """Import modules of lib/lambdas/<package> the way Lambda does: the package directory
    and the layer (runtime/ for tap_common, lib/lambdas for the stack's *_common) on sys.path, siblings imported by plain
    name. Same-named modules of other packages are evicted first, so every package gets
    its own `handler`; the returned objects stay valid after later loads."""
    for name, module in list(sys.modules.items()):
        if _is_package_module(module):
            del sys.modules[name]
    package_dir = str(LAMBDAS / package)
    others = [p for p in sys.path if p not in (package_dir, str(LAMBDAS)) and Path(p).parent != LAMBDAS]
    sys.path[:] = [package_dir, str(LAMBDAS), *others]
    loaded = {name: importlib.import_module(name) for name in (modules or ("handler",))}
    return SimpleNamespace(**loaded)


def reset_container() -> None:
    """Forget what a warm container keeps: clients, secrets, connections, created schemas."""
    tap_common.aws.client.cache_clear()
    tap_common.secrets.secret_json.cache_clear()
    tap_common.cache.redis_client.cache_clear()
    for conn in tap_common.db._connections.values():
        conn.close()
    tap_common.db._connections.clear()
    tap_common.db._schemas_ready.clear()


@dataclass
class FakeContext:
    function_name: str = "tap-test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:tap-test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
