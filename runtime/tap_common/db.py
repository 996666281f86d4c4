"""Aurora PostgreSQL access with pg8000: one connection per container, one transaction
per unit of work, idempotent schema creation.

TLS is required with libpq `sslmode=require` semantics (encrypted, certificate not
verified): Aurora's certificate chains to the RDS CA, which is not in the Lambda
runtime's trust store, and the connection stays inside the VPC between security groups
that only admit these functions.
"""

from __future__ import annotations

import ssl
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import pg8000.exceptions
from pg8000.native import Connection

from tap_common import config
from tap_common.secrets import secret_json

T = TypeVar("T")

_connections: dict[int, Connection] = {}
_schemas_ready: set[str] = set()
_BROKEN = (pg8000.exceptions.InterfaceError, OSError)


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect() -> Connection:
    secret = secret_json(config.require("DB_SECRET_ARN"))
    return Connection(
        user=secret["username"],
        password=secret["password"],
        host=config.require("DB_HOST"),
        port=config.integer("DB_PORT", 5432),
        database=config.require("DB_NAME"),
        ssl_context=_ssl_context(),
        timeout=10,
        application_name=config.optional("POWERTOOLS_SERVICE_NAME", "tap"),
    )


def _connection() -> Connection:
    # One connection per thread: a Lambda environment runs one invocation at a time (one thread),
    # and two "environments" in one process (a test's concurrent workers) must not share a session.
    key = threading.get_ident()
    if key not in _connections:
        _connections[key] = connect()
    return _connections[key]


def _discard() -> None:
    conn = _connections.pop(threading.get_ident(), None)
    if conn is not None:
        try:
            conn.close()
        except _BROKEN:
            # The socket is already gone; the connection object is dropped either way.
            return


def _begin() -> Connection:
    try:
        conn = _connection()
        conn.run("BEGIN")
        return conn
    except _BROKEN:
        # A connection that went stale between invocations gets one fresh replacement.
        _discard()
    conn = _connection()
    conn.run("BEGIN")
    return conn


def in_transaction(work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction on the container's connection (commit or roll back)."""
    conn = _begin()
    try:
        result = work(conn)
        conn.run("COMMIT")
        return result
    except _BROKEN:
        _discard()
        raise
    except Exception:
        _rollback(conn)
        raise


def _rollback(conn: Connection) -> None:
    try:
        conn.run("ROLLBACK")
    except _BROKEN:
        _discard()


def create_schema(conn: Connection, name: str, statements: Sequence[str]) -> None:
    """Run the schema's statements in the caller's transaction under the schema's advisory lock,
    because concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog."""
    conn.run("SELECT pg_advisory_xact_lock(:id)", id=zlib.crc32(name.encode()))
    for statement in statements:
        conn.run(statement)


def ensure_schema(name: str, statements: Sequence[str]) -> None:
    """Create tables once per container (concurrent cold starts serialised by create_schema's lock)."""
    if name in _schemas_ready:
        return
    in_transaction(lambda conn: create_schema(conn, name, statements))
    _schemas_ready.add(name)
