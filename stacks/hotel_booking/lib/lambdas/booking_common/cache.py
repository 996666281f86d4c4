"""The availability cache in Redis (contract.md, "Redis keys").

avail:{property_id}  hash of "<room>#<date>" -> {"units": n, "version": v}, one per property; its
                     TTL is reset on every write of that property.
hot:changes          sorted set of room-night keys by change time (written by reconciliation_checker's
                     stream consumer): what the wider audit samples.

Writes are guarded by version in one Lua script, so a replayed or late stream record never
replaces a newer value; a repair (``repair=True``) also replaces a wrong value of the same version,
but never a newer one: a booking's write landing between the repair's read of the table and its
write stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from booking_common.model import Night

HOT_SET = "hot:changes"

_WRITE = """
local written = 0
local repair = ARGV[2] == '1'
for i = 3, #ARGV, 3 do
  local field, version, payload = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local current = redis.call('HGET', KEYS[1], field)
  local seen = current and tonumber(cjson.decode(current)['version'])
  if not current or seen < version or (repair and seen == version and current ~= payload) then
    redis.call('HSET', KEYS[1], field, payload)
    written = written + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return written
"""


def cache_key(property_id: str) -> str:
    return f"avail:{property_id}"


def cache_field(room_id: str, stay_date: str) -> str:
    return f"{room_id}#{stay_date}"


def write_nights(client: redis.Redis, property_id: str, nights: Sequence[Night], ttl_seconds: int,
                 repair: bool = False) -> int:
    """Write one property's changed nights; returns how many fields changed."""
    args: list[Any] = [ttl_seconds, "1" if repair else "0"]
    for night in nights:
        payload = json.dumps({"units": night.available_units, "version": night.version}, separators=(",", ":"))
        args += [cache_field(night.room_id, night.stay_date), night.version, payload]
    return int(client.eval(_WRITE, 1, cache_key(property_id), *args))


def remove_fields(client: redis.Redis, property_id: str, fields: Iterable[str]) -> None:
    names = list(fields)
    if names:
        client.hdel(cache_key(property_id), *names)


def mark_hot(client: redis.Redis, pks: dict[str, float], window_seconds: int, now: float) -> None:
    """Record changed room-nights (pk -> change time) and forget those older than the window."""
    pipe = client.pipeline(transaction=False)
    pipe.zadd(HOT_SET, pks)
    pipe.zremrangebyscore(HOT_SET, "-inf", now - window_seconds)
    pipe.execute()


def hot_keys(client: redis.Redis, since: float, limit: int) -> list[str]:
    """Room-nights changed since `since`, newest first, at most `limit`."""
    return [str(k) for k in client.zrevrangebyscore(HOT_SET, "+inf", since, start=0, num=limit)]


def read_fields(client: redis.Redis, property_id: str, fields: Sequence[str]) -> dict[str, dict[str, int] | None]:
    """Cached {"units", "version"} per field (None when absent); {} when the snapshot itself expired."""
    key = cache_key(property_id)
    pipe = client.pipeline(transaction=False)
    pipe.exists(key)
    pipe.hmget(key, list(fields))
    exists, values = pipe.execute()
    if not exists:
        return {}
    return {field: (json.loads(value) if value is not None else None) for field, value in zip(fields, values, strict=True)}
