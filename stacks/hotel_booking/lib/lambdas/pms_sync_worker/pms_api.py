"""Calls to a property management system's availability API.

POST {endpoint}/properties/{property_id}/availability with the night's availability and
version, authenticated with the integration's API key. 2xx is delivered; 408, 429, 5xx and
network errors are worth retrying; 401/403 mean the key itself is refused (KeyRejected); any
other answer is a refusal no retry changes.

Connections are pooled per PMS host for the life of the execution environment: a call reuses
the previous call's connection (and its TLS session) instead of a new handshake each time.
urllib3 is the Lambda runtime's own (botocore's dependency).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import urllib3

TIMEOUT_S = 3.0
RETRYABLE = {408, 425, 429}

# Retries, backoff and redirects are the worker's to decide (a redirect is a refusal here).
_POOLS = urllib3.PoolManager(num_pools=16, maxsize=4, retries=False, timeout=urllib3.Timeout(total=TIMEOUT_S))


class Refused(Exception):
    """The PMS refused the update for good (a 4xx other than throttling or timeout)."""


class Unavailable(Exception):
    """The PMS did not take the update this time (5xx, 408/429, timeout, connection error)."""


class KeyRejected(Unavailable):
    """401/403: the integration's API key is refused. Every update would be; they wait (the breaker
    opens) for operations to rotate the key, instead of being parked one by one."""


def push(endpoint: str, api_key: str, update: dict[str, Any]) -> None:
    url = f"{endpoint.rstrip('/')}/properties/{quote(update['property_id'], safe='')}/availability"
    body = json.dumps({k: update[k] for k in ("room_id", "stay_date", "available_units", "total_units", "version")})
    try:
        response = _POOLS.request("POST", url, body=body.encode(), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts, refused or reset connections, TLS
        raise Unavailable(f"PMS unreachable: {exc}") from None
    status = response.status
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise KeyRejected(f"PMS rejected the API key ({status})")
    if status >= 500 or status in RETRYABLE:
        raise Unavailable(f"PMS answered {status}")
    raise Refused(f"PMS answered {status}")
