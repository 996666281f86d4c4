"""What a stack needs from the sandbox beyond its own tfvars: its ``sandbox.yaml`` (optional).

    partner_apis: [opera, mews]   # HTTP stand-ins (tapharness.partner_api) the sandbox serves in
                                  # place of external partners; control: /_sandbox/partners/<name>
    vars:                         # tofu -var values; {partner:<name>} becomes that stand-in's URL
      pms_integrations: '{ opera = { endpoint_url = "{partner:opera}", max_concurrency = 2 } }'
    secrets:                      # values put after apply into secrets the stack leaves empty
      - {output: secret_arns, key: pms_opera, value: {api_key: sandbox-opera-key}}
    integration_vars:             # what the sign-off's sandbox sets on top (short timeouts a
      lambda_timeout_seconds: 10  # test can wait out); never a change of the resource graph

The engine stays generic: nothing in it names a resource of a stack; this file does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from tapharness.stacks import Stack

_PARTNER = re.compile(r"\{partner:([a-z0-9_-]+)\}")


class AdapterError(ValueError):
    """The stack's sandbox.yaml is malformed or names something that does not exist."""


@dataclass(frozen=True)
class SecretValue:
    output: str
    key: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Adapter:
    partner_apis: tuple[str, ...] = ()
    vars: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretValue, ...] = ()
    integration_vars: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, stack: Stack) -> Adapter:
        path = stack.root / "sandbox.yaml"
        if not path.is_file():
            return cls()
        raw = yaml.safe_load(path.read_text()) or {}
        try:
            adapter = cls(tuple(raw.get("partner_apis") or ()), {str(k): str(v) for k, v in (raw.get("vars") or {}).items()},
                          tuple(SecretValue(s["output"], s["key"], dict(s["value"])) for s in raw.get("secrets") or ()),
                          {str(k): str(v) for k, v in (raw.get("integration_vars") or {}).items()})
        except (KeyError, TypeError, AttributeError) as exc:
            raise AdapterError(f"{path}: {exc!r}") from None
        unknown = {name for value in adapter.vars.values() for name in _PARTNER.findall(value)} - set(adapter.partner_apis)
        if unknown:
            raise AdapterError(f"{path}: vars name partner APIs it does not declare: {sorted(unknown)}")
        return adapter

    def tofu_vars(self, partner_urls: dict[str, str]) -> dict[str, str]:
        """The -var values with every {partner:<name>} replaced by that stand-in's URL."""
        return {name: _PARTNER.sub(lambda m: partner_urls[m.group(1)], value) for name, value in self.vars.items()}

    def put_secrets(self, outputs: dict[str, Any], put: Callable[[str, str], None]) -> int:
        """Write each secret value (``put(arn, json)``); returns how many."""
        for secret in self.secrets:
            try:
                arn = outputs[secret.output]["value"][secret.key]
            except KeyError:
                raise AdapterError(f"sandbox.yaml: no output {secret.output}[{secret.key!r}] to put a secret into") from None
            put(arn, json.dumps(secret.value))
        return len(self.secrets)
