"""moto's core, for every service: the speed patches a profile of the sandbox under load showed
in moto's server itself (the service of each request, the backend look-up, the handler's methods).

The per-service speed patches are with their service (``dynamodb``, ``kinesis``, ``sqs``).
"""

from __future__ import annotations

from typing import Any

from moto import backends as moto_backends
from moto.core import responses as core_responses
from moto.core.base_backend import BackendDict
from moto.core.utils import method_names_from_class

from tapharness.sandbox.patches import patch

# --- Speed: what a profile of the sandbox under load showed ----------------------------
# moto's server resolves the service of every request by listing moto's package directory,
# under a lock that every request takes: the list never changes while the process runs.
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


@patch(moto_backends, "list_of_moto_modules")
def _list_of_moto_modules() -> tuple[str, ...]:
    return _MOTO_MODULES


# Every look-up of a backend (``dynamodb_backends[account]``, several per request) takes moto's
# global backend lock and scans its list of every backend dictionary, comparing each in Python,
# to register one that is registered already: under load the requests queue on that lock (a
# third of the sandbox's samples). An account that is present was registered when it was added.
_CREATE_ACCOUNT_BACKEND = BackendDict._create_account_specific_backend


@patch(BackendDict, "_create_account_specific_backend")
def _account_backend(self: BackendDict[Any], account_id: str) -> None:
    if account_id not in self:
        _CREATE_ACCOUNT_BACKEND(self, account_id)


# Every request: moto lists the handler class's methods with inspect.getmembers to find the
# action's method. The classes do not change once the shims are installed.
_METHOD_NAMES: dict[type, frozenset[str]] = {}


@patch(core_responses, "method_names_from_class")
def _method_names(clazz: type) -> frozenset[str]:
    names = _METHOD_NAMES.get(clazz)
    if names is None:
        names = _METHOD_NAMES[clazz] = frozenset(method_names_from_class(clazz))
    return names
