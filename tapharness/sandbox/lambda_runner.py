"""Run deployed Lambda functions for real, without Docker.

Every invoke path in moto (Invoke, Step Functions tasks, S3/SNS notifications, the sandbox's
own pollers and API front door through Invoke) ends in
``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)``.
``LambdaRunner.install()`` replaces that method:

- the function's zip and its layers' zips (from moto's layer store) are unzipped once into a
  cache directory keyed by sha256 (``<cache>/code/<sha>``, ``<cache>/layers/<sha>``), once per
  code version;
- the handler runs in a *worker* subprocess (this interpreter, ``_bootstrap.py``) whose
  environment is the function's variables plus the Lambda runtime variables, the
  credentials of its execution role (``credentials``; the sandbox assumes the role as Lambda
  would) and ``AWS_ENDPOINT_URL`` (the moto server). Workers are kept warm and reused,
  one invocation at a time each, like Lambda's execution environments: module-level state
  (clients, fetched secrets) survives between invocations; a configuration or code change
  gives new workers; idle workers are stopped after ``idle_seconds``;
- the configured timeout is enforced: the worker is killed and the invocation fails with
  ``Task timed out after N.00 seconds``;
- everything the handler writes to stdout/stderr goes to CloudWatch Logs (log group
  ``/aws/lambda/<name>`` or the one ``LoggingConfig`` names, one stream per worker, with
  START/END/REPORT lines; with ``LogFormat`` JSON, ``platform.start`` and ``platform.report``
  JSON events instead, ``record.status`` success, error or timeout, and an uncaught error as a
  JSON line at level ERROR) when the role may write it (``may_write_logs``), and its tail is
  returned as the invoke's log result;
- the handler's exceptions become function errors with Lambda's error payload;
- at most ``max_environments`` workers per function run at once (default ``MAX_ENVIRONMENTS``);
  an invocation beyond that waits for a free one instead of starting another.

Not emulated: the memory limit (reported, not enforced), the declared runtime version (the
worker runs this interpreter), concurrency limits and throttling (see ``max_environments``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time_millis, utcnow

from tapharness.sandbox import metrics
from tapharness.sandbox.clients import InvokeOutcome
from tapharness.sandbox.filters import decode_json

BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
LOG_TAIL_BYTES = 4096
# Execution environments per function at once; further invocations wait for one. Lambda would
# scale out to the account's concurrency; on one machine more workers than a few per core only
# add cold starts and memory (each is a Python process of about 50 MB).
MAX_ENVIRONMENTS = 8
# "The Init phase is limited to 10 seconds" (Lambda execution environment lifecycle); past it the
# rest of the import counts against the first invocation, as Lambda retries Init within it.
INIT_LIMIT_S = 10.0
# Lambda's limit on a synchronous invocation's response.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
HostMapProvider = Callable[[str, str], dict[str, str]]
# The environment variables of a function's credentials (its execution role's session).
CredentialsProvider = Callable[[LambdaFunction], dict[str, str]]
# A function's reachability verdicts (``network.NetworkView.verdicts``), and where workers log paths.
NetworkProvider = Callable[[LambdaFunction], dict[str, Any]]
NETWORK_LOG = "network.jsonl"
# Whether the function's role may write its log stream (Lambda drops the logs otherwise).
LogGate = Callable[[LambdaFunction, str], bool]
_DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                      "AWS_SESSION_TOKEN": "testing"}


def _no_host_map(account_id: str, region: str) -> dict[str, str]:
    return {}


def _dummy_credentials(fn: LambdaFunction) -> dict[str, str]:
    return _DUMMY_CREDENTIALS


def _logs_allowed(fn: LambdaFunction, stream: str) -> bool:
    return True


# How the current thread's invocation was asked for: ``sync`` for Invoke's RequestResponse and the
# services that wait for the answer (API Gateway, event source mappings); unset for asynchronous ones.
INVOCATION = threading.local()


class Throttled(Exception):
    """An invocation refused by the function's reserved concurrency (Lambda's TooManyRequestsException)."""


class TooManyRequestsException(JsonRESTError):
    """Invoke's answer to a throttled synchronous invocation."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")
        self.description = json.dumps({"Type": "User", "message": "Rate Exceeded.",
                                       "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})


@dataclass
class Fault:
    """An injected fault of a function's next ``count`` invocations whose event contains ``matching``."""

    count: int
    seconds: float
    matching: str = ""


@dataclass(frozen=True)
class InvokeResult:
    """One invocation's outcome, as moto's ``_invoke_lambda`` returns it."""

    payload: str
    errored: bool
    logs: str


@dataclass(frozen=True)
class WorkerSpec:
    """Everything that, if it changes, needs a fresh execution environment."""

    function_name: str
    function_arn: str
    version: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    region: str
    log_group: str
    code_dir: str
    layer_dirs: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]


def _extract(zip_bytes: bytes, dest_root: Path) -> Path:
    """Unzip once per content hash; another process racing for the same directory is harmless."""
    dest = dest_root / hashlib.sha256(zip_bytes).hexdigest()
    if dest.is_dir():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=".extract-"))
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(tmp)
        tmp.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _python_path(code_dir: str, layer_dirs: tuple[str, ...]) -> str:
    """Lambda's order: the task root, then each layer's python/lib/.../site-packages and python/."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    entries = [code_dir]
    for layer in layer_dirs:
        entries += [f"{layer}/python/lib/{version}/site-packages", f"{layer}/python"]
    return os.pathsep.join(entries)


class Worker:
    """One warm execution environment: a bootstrap subprocess serving invocations one at a time."""

    def __init__(self, spec: WorkerSpec, env: dict[str, str], log_dir: Path) -> None:
        self.spec = spec
        self.log_stream = f"{utcnow():%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        self.last_used = time.monotonic()
        self.invocations = 0
        self._initialized = False
        self._log_dir = log_dir
        self._proc = subprocess.Popen(
            [sys.executable, "-u", str(BOOTSTRAP)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**env, "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream},
            cwd=spec.code_dir, start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        if self.alive:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream:
                stream.close()

    def _read_line(self, deadline: float) -> bytes | None:
        """The worker's next result line, or None on timeout or exit."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            data += chunk
        return data

    def initialize(self) -> str:
        """Wait out the Init phase (the handler's import), outside any invocation's timeout; what it
        printed, once (an empty string after the first call)."""
        if self._initialized:
            return ""
        self._initialized = True
        return self._init_output(self._read_line(time.monotonic() + INIT_LIMIT_S))

    @staticmethod
    def _init_output(ready: bytes | None) -> str:
        """What the Init phase printed (the ready line names its file), once."""
        if ready is None:
            return ""
        path = Path(json.loads(ready).get("init_log") or "")
        if not path.is_file():
            return ""
        output = path.read_text(errors="replace")
        path.unlink()
        return output

    def _peak_memory_mb(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except OSError:
            return 0
        return 0

    def invoke(self, event_json: str, request_id: str, delay_s: float = 0.0) -> tuple[dict[str, Any], str]:
        """Run one invocation (after ``delay_s`` in the worker, an injected slow start); returns
        (reply, captured output). Kills the worker on timeout."""
        assert self._proc.stdin is not None
        init_output = ""  # the runner waits out the Init phase (``initialize``) before an invocation
        self.invocations += 1
        timeout = self.spec.timeout
        fd, log_path = tempfile.mkstemp(dir=self._log_dir, prefix="invoke-", suffix=".log")
        os.close(fd)
        started = time.monotonic()
        request = {
            "request_id": request_id, "event": event_json, "log_path": log_path,
            "deadline_ms": int(time.time() * 1000) + timeout * 1000,
            "invoked_arn": self.spec.function_arn, "delay_s": delay_s,
        }
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
            line = self._read_line(started + timeout)
            if line is not None and json.loads(line).get("ready"):  # an Init longer than its limit ended
                init_output += self._init_output(line)
                line = self._read_line(started + timeout)
        except BrokenPipeError:
            line = None
        elapsed = time.monotonic() - started
        if line is not None:
            reply = json.loads(line)
        elif elapsed >= timeout and self.alive:  # a process that closed its output early has exited
            self.stop()
            message = f"Task timed out after {timeout:.2f} seconds"
            reply = {"ok": False, "fatal": True, "timed_out": True, "payload": json.dumps(
                {"errorMessage": f"{utcnow():%Y-%m-%dT%H:%M:%S.%fZ} {request_id} {message}",
                 "errorType": "Sandbox.Timedout"})}
        else:
            code = self._proc.wait()
            reply = {"ok": False, "fatal": True, "payload": json.dumps(
                {"errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}",
                 "errorType": "Runtime.ExitError"})}
        output = Path(log_path).read_text(errors="replace")
        os.unlink(log_path)
        reply["init_output"] = init_output
        self.last_used = time.monotonic()
        reply["duration_ms"] = elapsed * 1000
        reply["max_memory_mb"] = self._peak_memory_mb() if self.alive else 0
        return reply, output


class LambdaRunner:
    """Pools of warm workers per function configuration, installed into moto's Lambda model."""

    def __init__(self, cache_dir: Path, endpoint_url: str, host_map: HostMapProvider = _no_host_map,
                 extra_env: dict[str, str] | None = None, idle_seconds: float = 600.0,
                 credentials: CredentialsProvider = _dummy_credentials, may_write_logs: LogGate = _logs_allowed,
                 max_environments: int = MAX_ENVIRONMENTS, network: NetworkProvider | None = None) -> None:
        self.cache_dir = cache_dir
        self.network = network
        self.max_environments = max_environments
        self._concurrency: dict[str, threading.BoundedSemaphore] = {}
        self.endpoint_url = endpoint_url
        self.host_map = host_map
        self.credentials = credentials
        self.may_write_logs = may_write_logs
        self._code_dirs: dict[tuple[str, str], Path] = {}
        self._extracting: dict[tuple[str, str], threading.Lock] = {}
        self.extra_env = dict(extra_env or {})
        self.idle_seconds = idle_seconds
        self._idle: dict[WorkerSpec, list[Worker]] = {}
        self._busy: set[Worker] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._original: Any = None
        self._reaper = threading.Thread(target=self._reap_forever, name="lambda-reaper", daemon=True)
        # Failure injection (``/_sandbox/faults``), per function name: crashes and delays.
        self.crashes: dict[str, Fault] = {}
        self.crashed: Counter[str] = Counter()
        self.delays: dict[str, Fault] = {}
        self.delayed: Counter[str] = Counter()
        # Reserved concurrency: invocations in flight per function, and a wake-up when one ends.
        self._in_flight: Counter[str] = Counter()
        self._freed = threading.Condition()

    # --- moto integration -------------------------------------------------------------

    def install(self) -> None:
        """Replace moto's Docker executor with this runner (process-wide)."""
        runner = self
        self._original = LambdaFunction.__dict__["_invoke_lambda"]

        def _invoke_lambda(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            try:
                result = runner.invoke(fn, event)
            except Throttled as exc:
                if getattr(INVOCATION, "sync", False):
                    raise TooManyRequestsException() from None
                # An asynchronous delivery (SNS, S3, Invoke's Event) to a function reserved at 0:
                # Lambda accepts it and retries it; the sandbox drops it without failing the sender.
                return json.dumps({"errorMessage": str(exc), "errorType": "TooManyRequestsException"}), True, ""
            return result.payload, result.errored, result.logs

        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        self._reaper.start()

    def uninstall(self) -> None:
        """Restore moto's executor and stop every worker."""
        if self._original is not None:
            LambdaFunction._invoke_lambda = self._original  # type: ignore[method-assign]
            self._original = None
        self._stopping.set()
        with self._lock:
            workers = [w for pool in self._idle.values() for w in pool] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.stop()

    # --- invocation -------------------------------------------------------------------

    def worker_count(self) -> int:
        with self._lock:
            return sum(len(pool) for pool in self._idle.values()) + len(self._busy)

    def _spec(self, fn: LambdaFunction) -> tuple[WorkerSpec, dict[str, str]]:
        if not fn.code_bytes:
            raise ValueError(f"function {fn.function_name} has no code (S3 object missing?)")
        code_dir = self._unzipped(fn.function_arn, fn.code_sha_256, fn.code_bytes, "code")
        backend = get_backend(fn.account_id, fn.region)
        layer_dirs = []
        for layer in fn.layers:
            version = backend.layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise ValueError(f"layer {layer['Arn']} of {fn.function_name} does not exist")
            layer_dirs.append(str(self._unzipped(layer["Arn"], version.code_sha_256, version.code_bytes, "layers")))
        spec_version = str(fn.version)
        runtime = fn.run_time or "python3.12"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            **{str(k): str(v) for k, v in fn.environment_vars.items()},
            **self.extra_env,
            "_HANDLER": fn.handler or "",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": fn.logs_group_name,
            "AWS_LAMBDA_LOG_FORMAT": _log_format(fn),
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            **self.credentials(fn),
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
            "PYTHONPATH": _python_path(str(code_dir), tuple(layer_dirs)),
            # Bytecode goes to the sandbox's cache, never into the code or layer directories (read-only
            # on Lambda): a function's modules compile once per sandbox, not once per environment.
            "PYTHONPYCACHEPREFIX": str(self.cache_dir / "pycache"),
            "SANDBOX_HOST_MAP": json.dumps(self.host_map(fn.account_id, fn.region), sort_keys=True),
        }
        if self.network is not None:
            env["SANDBOX_NETWORK"] = json.dumps(self.network(fn), sort_keys=True)
            env["SANDBOX_NETWORK_LOG"] = str(self.cache_dir / NETWORK_LOG)
        spec = WorkerSpec(
            function_name=fn.function_name, function_arn=fn.function_arn, version=spec_version,
            handler=fn.handler or "", runtime=runtime, timeout=int(fn.timeout),
            memory_size=int(fn.memory_size), region=fn.region, log_group=fn.logs_group_name,
            code_dir=str(code_dir), layer_dirs=tuple(layer_dirs), environment=tuple(sorted(env.items())),
        )
        return spec, env

    def _unzipped(self, arn: str, sha: str, zip_bytes: bytes, kind: str) -> Path:
        """The directory of a zip, hashed and unzipped once per code version: the first invocations
        of a new version wait for one extraction instead of each unzipping the layer again."""
        key = (arn, sha)
        found = self._code_dirs.get(key)
        if found is not None and found.is_dir():
            return found
        with self._lock:
            extracting = self._extracting.setdefault(key, threading.Lock())
        with extracting:
            found = self._code_dirs.get(key)
            if found is None or not found.is_dir():
                found = self._code_dirs[key] = _extract(zip_bytes, self.cache_dir / kind)
        return found

    def _acquire(self, spec: WorkerSpec, env: dict[str, str]) -> tuple[Worker, bool]:
        with self._lock:
            pool = self._idle.get(spec, [])
            while pool:
                worker = pool.pop()
                if worker.alive:
                    self._busy.add(worker)
                    return worker, False
        log_dir = self.cache_dir / "invocations"
        log_dir.mkdir(parents=True, exist_ok=True)
        worker = Worker(spec, env, log_dir)
        with self._lock:
            self._busy.add(worker)
        return worker, True

    def _release(self, worker: Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if worker.alive and not self._stopping.is_set():
                self._idle.setdefault(worker.spec, []).append(worker)
                return
        worker.stop()

    def invoke(self, fn: LambdaFunction, event: Any = None) -> InvokeResult:
        """Run ``fn`` on ``event`` (moto passes the decoded JSON body, or the string "{}")."""
        event_json = "{}" if event is None or event == "{}" else json.dumps(event)
        request_id = str(uuid.uuid4())
        try:
            spec, env = self._spec(fn)
        except (ValueError, zipfile.BadZipFile) as exc:
            payload = json.dumps({"errorMessage": str(exc), "errorType": "Runtime.InvalidEntrypoint"})
            return InvokeResult(payload, True, "")
        except PermissionError as exc:  # the execution role cannot be assumed by Lambda
            payload = json.dumps({"errorMessage": f"The role defined for the function cannot be assumed by Lambda. {exc}",
                                  "errorType": "InvalidParameterValueException"})
            return InvokeResult(payload, True, "")
        reserved = getattr(fn, "reserved_concurrency", None)
        limit = None if reserved is None or reserved == "" else int(reserved)
        if not self._admit(fn, limit):
            raise Throttled(f"Rate Exceeded. (reserved concurrency of {fn.function_name})")
        try:
            return self._run(fn, spec, env, event_json, request_id)
        finally:
            self._leave(fn, limit)

    def _admit(self, fn: LambdaFunction, limit: int | None) -> bool:
        """Whether an invocation may start under the function's reserved concurrency: a synchronous
        one is throttled at the limit, an asynchronous one waits for a slot (Lambda queues and retries
        it), unless the function may never run (reserved at 0)."""
        if limit is None:
            return True
        with self._freed:
            while self._in_flight[fn.function_arn] >= limit:
                if getattr(INVOCATION, "sync", False) or limit == 0:
                    metrics.put(fn.account_id, fn.region, "AWS/Lambda", {"FunctionName": fn.function_name},
                                {"Throttles": (1, "Count")})
                    return False
                self._freed.wait(0.5)
            self._in_flight[fn.function_arn] += 1
            return True

    def _leave(self, fn: LambdaFunction, limit: int | None) -> None:
        if limit is None:
            return
        with self._freed:
            self._in_flight[fn.function_arn] -= 1
            self._freed.notify_all()

    def _run(self, fn: LambdaFunction, spec: WorkerSpec, env: dict[str, str], event_json: str,
             request_id: str) -> InvokeResult:
        slots = self._concurrency.get(fn.function_arn)
        if slots is None:
            with self._lock:
                slots = self._concurrency.setdefault(fn.function_arn, threading.BoundedSemaphore(self.max_environments))
        with slots:
            worker, cold = self._acquire(spec, env)
            init_output = worker.initialize()  # an injected crash counts from the invocation's start
            crash = self._crash_timer(fn.function_name, worker, event_json)
            try:
                reply, output = worker.invoke(event_json, request_id,
                                              self._take(self.delays, self.delayed, fn.function_name, event_json) or 0.0)
                reply["init_output"] = init_output + reply["init_output"]
            except BaseException:
                worker.stop()
                self._release(worker)
                raise
            finally:
                if crash is not None:
                    crash.cancel()
            if reply.get("fatal"):
                worker.stop()
            self._release(worker)
        metrics.lambda_invocation(fn.account_id, fn.region, fn.function_name, not reply["ok"], reply["duration_ms"])
        lines = reply.get("init_output", "").splitlines() + (  # the Init phase's lines come before START
            _json_platform_lines(request_id, spec, reply, output) if env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
            else _text_platform_lines(request_id, spec, reply, output, cold))
        if self.may_write_logs(fn, worker.log_stream):
            self._save_logs(fn, worker.log_stream, lines)
        logs = "\n".join(lines)
        tail = logs.encode()[-LOG_TAIL_BYTES:].decode(errors="ignore")
        return InvokeResult(reply["payload"], not reply["ok"], tail)

    def inject_crashes(self, function_name: str, count: int, after_s: float, matching: str = "") -> None:
        """The next ``count`` invocations of the function (those whose event contains ``matching``)
        die ``after_s`` into their run (SIGKILL of the execution environment, as an out-of-memory
        kill): the caller sees Runtime.ExitError."""
        with self._lock:
            self.crashes[function_name] = Fault(count, after_s, matching)

    def inject_delays(self, function_name: str, count: int, seconds: float, matching: str = "") -> None:
        """The next ``count`` invocations of the function (those whose event contains ``matching``)
        spend ``seconds`` in the handler's process before the handler runs, as a slow dependency
        would: their duration, their caller's latency and their timeout see it."""
        with self._lock:
            self.delays[function_name] = Fault(count, seconds, matching)

    def _take(self, faults: dict[str, Fault], taken: Counter[str], function_name: str,
              event_json: str) -> float | None:
        """The seconds of the function's fault if this invocation is one it hits, else None."""
        with self._lock:
            fault = faults.get(function_name)
            if fault is None or fault.count <= 0 or fault.matching not in event_json:
                return None
            fault.count -= 1
            taken[function_name] += 1
            return fault.seconds

    def _crash_timer(self, function_name: str, worker: Worker, event_json: str) -> threading.Timer | None:
        after_s = self._take(self.crashes, self.crashed, function_name, event_json)
        if after_s is None:
            return None

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)

        timer = threading.Timer(after_s, kill)
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def _save_logs(fn: LambdaFunction, stream: str, lines: list[str]) -> None:
        logs = fn.logs_backend
        logs.ensure_log_group(fn.logs_group_name)
        group = logs.groups[fn.logs_group_name]
        if stream not in group.streams:
            logs.create_log_stream(fn.logs_group_name, stream)
        now = unix_time_millis()
        events = [{"timestamp": now, "message": line} for line in lines if line]
        logs.put_log_events(fn.logs_group_name, stream, events)

    def _reap_forever(self) -> None:
        while not self._stopping.wait(min(30.0, self.idle_seconds)):
            cutoff = time.monotonic() - self.idle_seconds
            with self._lock:
                stale = [w for pool in self._idle.values() for w in pool if w.last_used < cutoff]
                for pool in self._idle.values():
                    pool[:] = [w for w in pool if w.last_used >= cutoff]
            for worker in stale:
                worker.stop()


def _log_format(fn: LambdaFunction) -> str:
    """``Text`` or ``JSON``: the function's LoggingConfig (kept by the shims; moto drops it)."""
    return str((fn.__dict__.get("logging_config") or {}).get("LogFormat") or "Text")


def _billed_ms(duration_ms: float) -> int:
    return max(1, int(duration_ms + 0.999))


def _text_platform_lines(request_id: str, spec: WorkerSpec, reply: dict[str, Any], output: str,
                         cold: bool) -> list[str]:
    """Lambda's START/END/REPORT lines (the Text log format) around the function's own lines."""
    lines = [f"START RequestId: {request_id} Version: {spec.version}", *output.splitlines()]
    if reply.get("timed_out"):  # "<time> <request id> Task timed out after N.00 seconds"
        lines.append(json.loads(reply["payload"])["errorMessage"])
    lines.append(f"END RequestId: {request_id}")
    duration = reply["duration_ms"]
    report = (f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
              f"Billed Duration: {_billed_ms(duration)} ms\tMemory Size: {spec.memory_size} MB\t"
              f"Max Memory Used: {reply['max_memory_mb']} MB")
    return [*lines, report + ("\t(cold start)" if cold else "")]


def _json_platform_lines(request_id: str, spec: WorkerSpec, reply: dict[str, Any], output: str) -> list[str]:
    """Lambda's system log events in the JSON log format around the function's own lines."""
    def event(kind: str, record: dict[str, Any]) -> str:
        return json.dumps({"time": f"{utcnow():%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z", "type": kind, "record": record})

    duration = reply["duration_ms"]
    status = "timeout" if reply.get("timed_out") else ("success" if reply["ok"] else "error")
    report: dict[str, Any] = {
        "requestId": request_id,
        "metrics": {"durationMs": round(duration, 3), "billedDurationMs": _billed_ms(duration),
                    "memorySizeMB": spec.memory_size, "maxMemoryUsedMB": reply["max_memory_mb"]},
        "status": status,
    }
    if status == "timeout":
        report["errorType"] = "Sandbox.Timedout"
    return [event("platform.start", {"requestId": request_id, "version": spec.version}),
            *output.splitlines(), event("platform.report", report)]


class LocalLambda:
    """Lambda's synchronous Invoke as the services the sandbox plays make it (API Gateway, event
    source mappings): the function looked up in moto's Lambda model in this process and run by
    the runner, with no HTTP round trip from the sandbox to its own server (and no JSON encoding
    of the event and base64 of the log tail that the round trip needs). The answer is the Invoke
    API's: function errors, a response over 6 MB as ``Function.ResponseSizeTooLarge``, an unknown
    function as the ``ResourceNotFoundException`` the API raises."""

    def __init__(self, runner: LambdaRunner) -> None:
        self.runner = runner

    def invoke(self, function_arn: str, event: dict[str, Any]) -> InvokeOutcome:
        _, _, _, region, account, *_ = function_arn.split(":")
        try:
            fn = get_backend(account, region).get_function(function_arn, None)
        except JsonRESTError as exc:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": exc.message}},
                              "Invoke") from exc
        INVOCATION.sync = True
        try:
            result = self.runner.invoke(fn, event)
        except Throttled as exc:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
                               "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}, "Invoke") from exc
        finally:
            INVOCATION.sync = False
        if len(result.payload) > MAX_RESPONSE_BYTES:
            return InvokeOutcome(True, {"errorType": "Function.ResponseSizeTooLarge", "errorMessage":
                                        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."},
                                 200)
        return InvokeOutcome(result.errored, decode_json(result.payload) if result.payload else None, 200)
