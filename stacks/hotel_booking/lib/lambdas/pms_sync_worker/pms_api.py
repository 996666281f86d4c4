"""Calls to a property management system's availability API.

POST {endpoint}/properties/{property_id}/availability with the night's availability and
version, authenticated with the integration's API key. 2xx is delivered; 408, 429, 5xx and
network errors are worth retrying; 401/403 mean the key itself is refused (KeyRejected); any
other answer is a refusal no retry changes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

TIMEOUT_S = 3.0
RETRYABLE = {408, 425, 429}


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
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise KeyRejected(f"PMS rejected the API key ({exc.code})") from None
        if exc.code >= 500 or exc.code in RETRYABLE:
            raise Unavailable(f"PMS answered {exc.code}") from None
        raise Refused(f"PMS answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise Unavailable(f"PMS unreachable: {exc}") from None
