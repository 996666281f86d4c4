"""What a stack needs from the sandbox beyond its own tfvars: its ``sandbox.yaml`` (optional).

    partner_apis: [opera, mews]   # HTTP stand-ins (tapharness.partner_api) the sandbox serves in
                                  # place of external partners; control: /_sandbox/partners/<name>
    vars:                         # tofu -var values; {partner:<name>} becomes that stand-in's URL
      pms_integrations: '{ opera = { endpoint_url = "{partner:opera}", max_concurrency = 2 } }'
    secrets:                      # values put after apply into secrets the stack leaves empty
      - {output: secret_arns, key: pms_opera, value: {api_key: sandbox-opera-key}}
    integration_vars:             # what the sign-off's sandbox sets on top (short timeouts a
      lambda_timeout_seconds: 10  # test can wait out); never a change of the resource graph
    model_endpoints:              # SageMaker endpoints served by a real model trained on the
      - endpoint_output: ...      # stack's data (tapharness.sandbox.models has the fields)

The engine stays generic: nothing in it names a resource of a stack; this file does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
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
class EndpointSpec:
    """A SageMaker endpoint the sandbox serves with a model trained on ``training_sql``'s rows."""

    endpoint_output: str
    training_sql: str
    request: dict[str, str] = field(default_factory=lambda: {"history": "recent_content_ids", "candidates": "candidates"})
    response: dict[str, str] = field(default_factory=lambda: {
        "list": "recommendations", "item": "content_id", "score": "score"})
    retrain_after_s: float = 30.0

    @classmethod
    def from_yaml(cls, raw: dict[str, Any]) -> EndpointSpec:
        """The spec of a sandbox.yaml entry (or its ``to_json``): field names not given keep their defaults."""
        spec = cls(str(raw["endpoint_output"]), str(raw["training_sql"]))
        return replace(spec, request={**spec.request, **(raw.get("request") or {})},
                       response={**spec.response, **(raw.get("response") or {})},
                       retrain_after_s=float(raw.get("retrain_after_s", spec.retrain_after_s)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Adapter:
    partner_apis: tuple[str, ...] = ()
    vars: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretValue, ...] = ()
    integration_vars: dict[str, str] = field(default_factory=dict)
    model_endpoints: tuple[EndpointSpec, ...] = ()

    @classmethod
    def load(cls, stack: Stack) -> Adapter:
        path = stack.root / "sandbox.yaml"
        if not path.is_file():
            return cls()
        raw = yaml.safe_load(path.read_text()) or {}
        try:
            adapter = cls(tuple(raw.get("partner_apis") or ()), {str(k): str(v) for k, v in (raw.get("vars") or {}).items()},
                          tuple(SecretValue(s["output"], s["key"], dict(s["value"])) for s in raw.get("secrets") or ()),
                          {str(k): str(v) for k, v in (raw.get("integration_vars") or {}).items()},
                          tuple(EndpointSpec.from_yaml(e) for e in raw.get("model_endpoints") or ()))
        except (KeyError, TypeError, AttributeError) as exc:
            raise AdapterError(f"{path}: {exc!r}") from None
        unknown = {name for value in adapter.vars.values() for name in _PARTNER.findall(value)} - set(adapter.partner_apis)
        if unknown:
            raise AdapterError(f"{path}: vars name partner APIs it does not declare: {sorted(unknown)}")
        return adapter

    def tofu_vars(self, partner_urls: dict[str, str]) -> dict[str, str]:
        """The -var values with every {partner:<name>} replaced by that stand-in's URL."""
        return {name: _PARTNER.sub(lambda m: partner_urls[m.group(1)], value) for name, value in self.vars.items()}

    def model_endpoints_by_name(self, outputs: dict[str, Any]) -> dict[str, EndpointSpec]:
        """Each model endpoint under the name its output's ARN ends with."""
        named = {}
        for spec in self.model_endpoints:
            try:
                arn = str(outputs[spec.endpoint_output]["value"])
            except KeyError:
                raise AdapterError(f"sandbox.yaml: no output {spec.endpoint_output} naming a model endpoint") from None
            named[arn.rsplit("/", 1)[-1]] = spec
        return named

    def put_secrets(self, outputs: dict[str, Any], put: Callable[[str, str], None]) -> int:
        """Write each secret value (``put(arn, json)``); returns how many."""
        for secret in self.secrets:
            try:
                arn = outputs[secret.output]["value"][secret.key]
            except KeyError:
                raise AdapterError(f"sandbox.yaml: no output {secret.output}[{secret.key!r}] to put a secret into") from None
            put(arn, json.dumps(secret.value))
        return len(self.secrets)
