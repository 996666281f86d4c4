"""Redis (ElastiCache) client, one per container.

TLS when REDIS_TLS=true: the server certificate is verified against the default trust
store (ElastiCache certificates chain to a public CA; a sandbox points SSL_CERT_FILE at
its own CA). The auth token comes from the secret named by REDIS_AUTH_SECRET_ARN.
Timeouts and retries are short because every caller has a fallback when Redis is down.
"""

from __future__ import annotations

import functools

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from tap_common import config
from tap_common.secrets import secret_json


@functools.cache
def redis_client() -> redis.Redis:
    token = secret_json(config.require("REDIS_AUTH_SECRET_ARN"))["auth_token"]
    return redis.Redis(
        host=config.require("REDIS_HOST"),
        port=config.integer("REDIS_PORT", 6379),
        password=token,
        ssl=config.flag("REDIS_TLS"),
        ssl_cert_reqs="required",
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        health_check_interval=30,
        decode_responses=True,
    )
