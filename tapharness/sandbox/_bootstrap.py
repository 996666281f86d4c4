"""Lambda runtime bootstrap, run as a script inside each function worker (standard library only).

Protocol with ``lambda_runner.Worker``: one JSON request per line on stdin
``{"request_id", "event", "deadline_ms", "log_path", "invoked_arn"}``; one JSON result per
line on the worker's original stdout ``{"ok": bool, "payload": str, "fatal": bool}``.
While an invocation runs, file descriptors 1 and 2 point at ``log_path`` so everything the
handler prints (and its logging) is captured; between invocations they point at /dev/null.

``SANDBOX_HOST_MAP`` (JSON ``{"hostname or pattern": "127.0.0.1:port"}``) is applied to
``socket.getaddrinfo``: connections to the stack's ElastiCache/Aurora endpoint names reach
the sandbox's local Redis/PostgreSQL, while TLS still sees the original hostname (SNI and
certificate checks use the name the handler asked for).

``SANDBOX_NETWORK`` holds the function's reachability verdicts (``network.NetworkView.verdicts``:
``[via, missing]`` per AWS API and per host). A connection with no path behaves as on AWS, where
the VPC drops it: the client waits its connect timeout (or until the function's own timeout)
and gets a timeout, never an access error. AWS API calls are checked by the botocore endpoint
prefix they go to (every API is served by the same local endpoint); hosts by name. Each path
used (once per worker) and each refused attempt is appended to ``SANDBOX_NETWORK_LOG``.
"""

from __future__ import annotations

import errno
import fnmatch
import importlib
import importlib.abc
import importlib.util
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from typing import Any


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools use."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


# Headers (outside the signature) telling the sandbox's IAM gate the VPC endpoint a call came through.
SOURCE_VPC_HEADER = "x-tapstack-source-vpc"
SOURCE_VPCE_HEADER = "x-tapstack-source-vpce"
# TEST-NET-1 (RFC 5737): never routed, so an address here can only be a connection the VPC drops.
DROPPED = "192.0.2.1"
_DEADLINE_MS = [0]


class Network:
    """The function's verdicts, and the log of the paths it used and the ones it was refused."""

    def __init__(self, verdicts: dict[str, Any], log_path: str) -> None:
        self.verdicts = verdicts
        self.log_path = log_path
        self._seen: set[tuple[str, str, str]] = set()

    def host(self, name: str) -> list[str] | None:
        return lookup(self.verdicts.get("hosts") or {}, name)

    def aws(self, prefix: str) -> list[str] | None:
        if not self.verdicts:
            return None
        return (self.verdicts.get("aws") or {}).get(prefix) or self.verdicts.get("aws_default")

    def record(self, kind: str, target: str, port: Any, verdict: list[str]) -> None:
        via, missing = verdict[:2]
        key = (kind, target, missing)
        if not self.log_path or (not missing and key in self._seen):
            return
        self._seen.add(key)
        line = json.dumps({"time": time.time(), "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
                           "kind": kind, "target": target, "port": port, "via": via, "missing": missing})
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def wait_like_a_dropped_connection(timeout: float | None) -> None:
    """Sleep as a client whose SYN is never answered: its timeout, or past the function's deadline."""
    remaining = _DEADLINE_MS[0] / 1000 - time.time() + 1 if _DEADLINE_MS[0] else 1.0
    time.sleep(max(0.0, remaining if timeout is None else min(timeout, remaining)))


def lookup(table: dict[str, Any], name: str) -> Any:
    """``table[name]``, else the value of the first pattern (``*.execute-api.*.amazonaws.com``) it matches."""
    if name in table:
        return table[name]
    for pattern, value in table.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return value
    return None


def install_host_map(mapping: dict[str, str], network: Network | None = None) -> None:
    """Resolve the mapped hostnames to their local address and port; a host the function has no
    path to resolves (as the VPC's DNS would) but its connections are dropped."""
    targets = {host: (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for host, addr in mapping.items()}
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        verdict = network.host(name) if network is not None and name else None
        if verdict is not None:
            network.record("host", name, port, verdict)  # type: ignore[union-attr]
            if verdict[1]:
                return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (DROPPED, int(port or 0)))]
        target = lookup(targets, name) if name else None
        if target is not None:
            host, port = target
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    if network is None:
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def dropped_connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[:1] == (DROPPED,):
            wait_like_a_dropped_connection(self.gettimeout())
            raise TimeoutError("timed out")
        return connect(self, address)

    def dropped_connect_ex(self: socket.socket, address: Any) -> int:
        if isinstance(address, tuple) and address[:1] == (DROPPED,):
            wait_like_a_dropped_connection(self.gettimeout())
            return errno.ETIMEDOUT
        return connect_ex(self, address)

    socket.socket.connect = dropped_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = dropped_connect_ex  # type: ignore[method-assign]


def guard_aws_calls(network: Network) -> None:
    """Check each AWS API call's path when botocore sends it (on import, so functions that never
    import botocore pay nothing)."""

    def patch(module: Any) -> None:
        from botocore.exceptions import ConnectTimeoutError

        send = module.Endpoint._send

        def _send(self: Any, request: Any) -> Any:
            verdict = network.aws(self._endpoint_prefix)
            if verdict is not None:
                network.record("aws", self._endpoint_prefix, 443, verdict)
                if verdict[1]:
                    timeout = getattr(self.http_session, "_timeout", 60)
                    wait_like_a_dropped_connection(getattr(timeout, "connect_timeout", timeout))
                    raise ConnectTimeoutError(endpoint_url=request.url)
                if len(verdict) > 3 and verdict[3]:  # through a VPC endpoint: what AWS sees as the source
                    request.headers[SOURCE_VPC_HEADER] = verdict[2]
                    request.headers[SOURCE_VPCE_HEADER] = verdict[3]
            return send(self, request)

        module.Endpoint._send = _send

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name != "botocore.endpoint":
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            loader_exec = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                loader_exec(module)
                patch(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Finder())


def _error_payload(exc: BaseException, request_id: str, error_type: str | None = None,
                   message: str | None = None) -> str:
    return json.dumps({
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    })


def _load_handler() -> Any:
    module_path, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_path.replace("/", "."))
    return getattr(module, function_name)


def _redirect(fd: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def main() -> None:
    # The script's own directory must not shadow the function's modules.
    sys.path.pop(0)
    verdicts = json.loads(os.environ.get("SANDBOX_NETWORK", "{}"))
    network = Network(verdicts, os.environ.get("SANDBOX_NETWORK_LOG", "")) if verdicts else None
    install_host_map(json.loads(os.environ.get("SANDBOX_HOST_MAP", "{}")), network)
    if network is not None:
        guard_aws_calls(network)
    results = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    _redirect(devnull)
    # The Init phase: the handler's module is imported before the first invocation and its time is
    # not the invocation's ("the Init phase ... before the first invocation", Lambda execution
    # environment lifecycle); an import error is reported by that invocation, as Lambda does.
    handler, init_error = None, None
    init_fd, init_log = tempfile.mkstemp(prefix="init-", suffix=".log")
    _redirect(init_fd)  # what the import prints belongs to the log stream, before the first START
    try:
        handler = _load_handler()
    except Exception as exc:  # noqa: BLE001 - any import failure is the function's ImportModuleError
        init_error = exc
    _redirect(devnull)
    os.close(init_fd)
    results.write(json.dumps({"ready": True, "init_log": init_log}) + "\n")
    results.flush()
    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["request_id"]
        _DEADLINE_MS[0] = int(request["deadline_ms"])
        log_fd = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _redirect(log_fd)
        fatal = False
        try:
            if handler is None:
                fatal = True
                module = os.environ["_HANDLER"].rpartition(".")[0]
                message = f"Unable to import module '{module}': {init_error}"
                print(f"[ERROR] Runtime.ImportModuleError: {message}", file=sys.stderr)
                raise RuntimeError(message) from init_error
            context = LambdaContext(request_id, request["deadline_ms"], request["invoked_arn"])
            time.sleep(request.get("delay_s", 0.0))  # an injected slow start (/_sandbox/faults)
            result = handler(json.loads(request["event"]), context)
            try:
                reply = {"ok": True, "payload": json.dumps(result)}
            except (TypeError, ValueError) as exc:
                reply = {"ok": False, "payload": _error_payload(
                    exc, request_id, "Runtime.MarshalError", f"Unable to marshal response: {exc}")}
        except Exception as exc:  # noqa: BLE001 - any handler exception is the invocation's error, as in Lambda
            error_type = "Runtime.ImportModuleError" if fatal else None
            if not fatal and os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON":
                print(json.dumps({"timestamp": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}", "level": "ERROR",
                                  "message": json.loads(_error_payload(exc, request_id)), "requestId": request_id}),
                      file=sys.stderr)
            elif not fatal:
                print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
                traceback.print_exc()
            reply = {"ok": False, "payload": _error_payload(exc, request_id, error_type,
                                                            str(exc))}
        reply["fatal"] = fatal
        _redirect(devnull)
        os.close(log_fd)
        results.write(json.dumps(reply) + "\n")
        results.flush()
        if fatal:
            return


if __name__ == "__main__":
    main()
