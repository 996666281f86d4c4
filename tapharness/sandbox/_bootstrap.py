"""Lambda runtime bootstrap, run as a script inside each function worker (standard library only).

Protocol with ``lambda_runner.Worker``: one JSON request per line on stdin
``{"request_id", "event", "deadline_ms", "log_path", "invoked_arn"}``; one JSON result per
line on the worker's original stdout ``{"ok": bool, "payload": str, "fatal": bool}``.
While an invocation runs, file descriptors 1 and 2 point at ``log_path`` so everything the
handler prints (and its logging) is captured; between invocations they point at /dev/null.

``SANDBOX_HOST_MAP`` (JSON ``{"hostname": "127.0.0.1:port"}``) is applied to
``socket.getaddrinfo``: connections to the stack's ElastiCache/Aurora endpoint names reach
the sandbox's local Redis/PostgreSQL, while TLS still sees the original hostname (SNI and
certificate checks use the name the handler asked for).
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
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


def install_host_map(mapping: dict[str, str]) -> None:
    """Resolve the mapped hostnames to their local address and port."""
    targets = {host: (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for host, addr in mapping.items()}
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in targets:
            host, port = targets[name]
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


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
    install_host_map(json.loads(os.environ.get("SANDBOX_HOST_MAP", "{}")))
    results = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    _redirect(devnull)
    handler = None
    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["request_id"]
        log_fd = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _redirect(log_fd)
        fatal = False
        try:
            if handler is None:
                try:
                    handler = _load_handler()
                except Exception as exc:
                    fatal = True
                    module = os.environ["_HANDLER"].rpartition(".")[0]
                    message = f"Unable to import module '{module}': {exc}"
                    print(f"[ERROR] Runtime.ImportModuleError: {message}", file=sys.stderr)
                    raise RuntimeError(message) from exc
            context = LambdaContext(request_id, request["deadline_ms"], request["invoked_arn"])
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
