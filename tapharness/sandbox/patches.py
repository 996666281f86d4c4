"""The one registry of everything the sandbox changes in moto 5.2.5, and ``install()``.

Each module of ``tapharness.sandbox.services`` registers its changes when it is imported:

- ``@patch(ResponseClass, "action_name")`` above a function adds an API action moto lacks (or
  replaces moto's): moto dispatches an action to the response-class method named after it
  (snake case), so each shim is one small function installed under that name; moto serializes
  what it returns (an ``ActionResult`` for query-protocol services, a JSON string for the JSON
  and REST ones);
- ``@patch(ModelOrModule, "attribute")`` above a function fixes moto behaviour the provider
  trips over, or a slow path, by replacing a model method or a module function;
- ``patch.replace(owner, "attribute", value)`` sets a value that is not a function defined
  there (a ``property(...)``, a wrapped original, a function of another module);
- ``patch.url(urls_module, pattern, handler)`` adds a URL moto's service does not route.

A shim's state lives on the moto backend it belongs to (``store``: per account and region), so
a moto reset clears it. The originals a patch wraps are read when its module is imported, and
``install()`` imports every service module before it applies anything, so installing again
sets the same values (idempotent).

``GUARD`` is the IAM ``ServiceGuard`` of service-to-service calls (S3 notifications, SNS
deliveries, Step Functions tasks, Athena CTAS writes), set by ``install(guard)``; None leaves
them unchecked.

Found by running the AWS provider's apply, plan and destroy of lib/tap_stack.tf against moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tapharness.sandbox import services

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

F = TypeVar("F", bound=Callable[..., Any])

# --- Service-to-service calls under IAM ---------------------------------------------------
# moto delivers S3 notifications and SNS subscriptions inline, and Step Functions calls its
# Lambda tasks with a fixed dummy key. Under IAM, AWS checks each of these: the target's
# resource policy (function permission, queue policy, and the queue's key policy for an
# encrypted queue) for the service principal with aws:SourceArn/aws:SourceAccount, and the
# state machine's role for its tasks. ``install(guard=...)`` (an ``iam.sessions.ServiceGuard``)
# turns these checks on (``services.s3``, ``services.sns``, ``services.stepfunctions``; also
# the Athena caller's permissions in ``services.athena``).
GUARD: ServiceGuard | None = None


def caller_allows(response: Any, service: str, label: str) -> Callable[[str, str], bool]:
    """``allows(action, resource)``: whether the principal that signed ``response``'s request may do an
    action through ``service`` with its own credentials (a forward access session: ``via_service``),
    S3 actions with the KMS permissions S3 checks for an SSE-KMS object (``kms_on_behalf``); IAM off,
    or the harness's own key: everything. Athena's CTAS and SELECT, Rekognition's image reads."""
    from tapharness.sandbox.iam import wire
    from tapharness.sandbox.iam.authorizer import kms_on_behalf, via_service
    from tapharness.sandbox.iam.catalog import Need

    signed = wire.signature({k.lower(): v for k, v in response.headers.items()}, "")
    principal = GUARD.authorizer.principal_for_key(signed.access_key) if GUARD and signed else None
    if GUARD is None or signed is None or principal is None:
        return lambda action, resource: True
    guard, via = GUARD, via_service(service)

    def allows(action: str, resource: str) -> bool:
        needs = [Need(action, resource, dict(via))]
        if action.startswith("s3:"):
            bucket, _, key = resource.split(":::", 1)[1].partition("/")
            call = wire.ApiCall("s3", "s3", "GetObject" if action.startswith("s3:GetObject") else action.split(":", 1)[1],
                                response.region, signed.access_key, {"Bucket": bucket, "Key": key})
            needs += [Need(n.action, n.resource, {**n.context, **via})
                      for n in kms_on_behalf(call, needs, principal.account)]
        return all(d.allowed for d in guard.authorizer.decide(principal, needs, label, response.region))

    return allows


class Registry:
    """What the service modules set on moto: (owner, attribute) -> value, and URLs to add."""

    def __init__(self) -> None:
        self.attributes: dict[tuple[Any, str], Any] = {}
        self.urls: list[tuple[Any, str, Any]] = []

    def __call__(self, owner: Any, name: str) -> Callable[[F], F]:
        """Decorator: install the function as ``owner.name``."""
        def register(function: F) -> F:
            self.replace(owner, name, function)
            return function
        return register

    def replace(self, owner: Any, name: str, value: Any) -> None:
        """Install ``value`` as ``owner.name``."""
        key = (owner, name)
        if key in self.attributes:
            raise ValueError(f"{getattr(owner, '__name__', owner)}.{name} is patched twice")
        self.attributes[key] = value

    def url(self, urls_module: Any, pattern: str, handler: Any) -> None:
        """Route ``pattern`` of a service's ``url_paths`` to ``handler`` (unless it is routed already)."""
        self.urls.append((urls_module, pattern, handler))

    def apply(self) -> None:
        for (owner, name), value in self.attributes.items():
            setattr(owner, name, value)
        for urls_module, pattern, handler in self.urls:
            urls_module.url_paths.setdefault(pattern, handler)


patch = Registry()


def store(backend: Any, name: str) -> dict[str, Any]:
    """A shim's own table on a moto backend instance."""
    return backend.__dict__.setdefault(f"_sandbox_{name}", {})


def json_error(code: str, message: str, status: int = 400) -> tuple[int, dict[str, str], str]:
    return status, {"status": str(status), "x-amzn-ErrorType": code}, json.dumps({"__type": code, "message": message})


def install(guard: ServiceGuard | None = None) -> None:
    """Add every shim and patch to moto (process-wide; call before the server builds its apps).

    ``guard`` turns on IAM for service-to-service calls (see ``ServiceGuard``); None leaves
    them unchecked."""
    global GUARD
    GUARD = guard
    services.load()  # importing the service modules registers their patches
    patch.apply()
