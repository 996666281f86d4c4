"""The Lambda runner: real handler execution in subprocess workers, through moto's Invoke."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tapharness.sandbox import _bootstrap

from .helpers import unique, wait_until, zip_sources

# Functions started and waited on for seconds: handed out first (conftest.py).
pytestmark = pytest.mark.slow


def invoke(aws: Callable[[str], Any], arn: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = aws("lambda").invoke(FunctionName=arn, Payload=json.dumps(event).encode(), **kwargs)
    return response, json.loads(response["Payload"].read())


def test_handler_result_is_the_invoke_payload(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    return {'doubled': event['n'] * 2}\n")
    response, payload = invoke(aws, arn, {"n": 21})
    assert "FunctionError" not in response
    assert payload == {"doubled": 42}


def test_handler_exception_is_a_handled_function_error_with_lambda_error_shape(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    raise ValueError('bad input')\n")
    response, payload = invoke(aws, arn, {})
    assert response["FunctionError"] == "Handled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad input"


def test_timeout_kills_the_invocation_and_reports_task_timed_out(aws, make_function):
    arn = make_function("import time\ndef lambda_handler(event, context):\n    time.sleep(30)\n", timeout=1)
    response, payload = invoke(aws, arn, {})
    assert response["FunctionError"] == "Handled"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]


def test_the_handlers_import_is_the_init_phase_not_the_first_invocations_time(aws, make_function):
    """A slow import (a cold start) does not eat into the invocation's timeout: on Lambda the Init
    phase runs before the Invoke phase, whose timeout starts then."""
    source = ("import time\ntime.sleep(2)\n"
              "def lambda_handler(event, context):\n    return context.get_remaining_time_in_millis()\n")
    response, remaining = invoke(aws, make_function(source, timeout=3), {})
    assert "FunctionError" not in response and remaining > 2500, remaining


def test_what_the_import_prints_reaches_the_log_stream_before_start(aws, make_function):
    arn = make_function("print('loading the model')\ndef lambda_handler(event, context):\n    return 1\n")
    invoke(aws, arn, {})
    group = f"/aws/lambda/{arn.split(':')[-1]}"

    def messages() -> list[str]:
        return [e["message"] for e in aws("logs").filter_log_events(logGroupName=group)["events"]]

    lines = wait_until(lambda: [m for m in messages() if m.startswith("REPORT")] and messages(), what="log events")
    assert lines.index("loading the model") < next(i for i, m in enumerate(lines) if m.startswith("START"))


def test_worker_after_a_timeout_serves_the_next_invocation(aws, make_function):
    source = "import time\ndef lambda_handler(event, context):\n    time.sleep(event['sleep'])\n    return 'ok'\n"
    arn = make_function(source, timeout=1)
    invoke(aws, arn, {"sleep": 5})
    _, payload = invoke(aws, arn, {"sleep": 0})
    assert payload == "ok"


def test_printed_lines_reach_cloudwatch_logs_with_start_end_report(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    print('hello from', context.function_name)\n")
    name = arn.split(":")[-1]
    invoke(aws, arn, {})
    group = f"/aws/lambda/{name}"

    def messages() -> list[str]:
        events = aws("logs").filter_log_events(logGroupName=group)["events"]
        return [e["message"] for e in events]

    lines = wait_until(messages, what="log events")
    assert f"hello from {name}" in lines
    assert any(line.startswith("START RequestId:") for line in lines)
    assert any(line.startswith("REPORT RequestId:") for line in lines)


def json_log_events(aws: Callable[[str], Any], arn: str, count: int) -> list[dict[str, Any]]:
    group = f"/aws/lambda/{arn.split(':')[-1]}"

    def events() -> list[dict[str, Any]] | None:
        found = [json.loads(e["message"]) for e in aws("logs").filter_log_events(logGroupName=group)["events"]]
        return found if len(found) >= count else None

    return wait_until(events, what=f"{count} log events")


def test_json_log_format_writes_platform_start_and_report_events(aws, make_function):
    arn = make_function("import json\ndef lambda_handler(event, context):\n    print(json.dumps({'level': 'INFO'}))\n",
                        log_format="JSON")
    invoke(aws, arn, {})
    start, own, report = json_log_events(aws, arn, 3)
    assert (start["type"], own, report["type"]) == ("platform.start", {"level": "INFO"}, "platform.report")
    assert report["record"]["status"] == "success"
    assert report["record"]["metrics"]["durationMs"] > 0
    assert report["record"]["metrics"]["memorySizeMB"] == 256


def test_json_log_format_logs_an_uncaught_error_at_level_error(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    raise KeyError('Records')\n", log_format="JSON")
    invoke(aws, arn, {})
    events = json_log_events(aws, arn, 3)
    [error] = [e for e in events if e.get("level") == "ERROR"]
    assert error["message"]["errorType"] == "KeyError"
    assert events[-1]["record"]["status"] == "error"


def test_json_log_format_reports_a_timeout_in_the_report_status(aws, make_function):
    arn = make_function("import time\ndef lambda_handler(event, context):\n    time.sleep(30)\n", timeout=1,
                        log_format="JSON")
    invoke(aws, arn, {})
    report = json_log_events(aws, arn, 2)[-1]
    assert (report["type"], report["record"]["status"]) == ("platform.report", "timeout")


def test_tail_log_result_contains_the_handler_output(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    print('tail me')\n")
    response, _ = invoke(aws, arn, {}, LogType="Tail")
    assert "tail me" in base64.b64decode(response["LogResult"]).decode()


def test_environment_has_function_variables_runtime_variables_and_endpoint(aws, make_function, sandbox):
    source = """
import os
def lambda_handler(event, context):
    keys = ["GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "_HANDLER", "AWS_ENDPOINT_URL",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT"]
    return {k: os.environ.get(k) for k in keys}
"""
    arn = make_function(source, env={"GREETING": "hi"})
    _, payload = invoke(aws, arn, {})
    assert payload["GREETING"] == "hi"
    assert payload["AWS_LAMBDA_FUNCTION_NAME"] == arn.split(":")[-1]
    assert payload["AWS_REGION"] == "us-east-1"
    assert payload["_HANDLER"] == "handler.lambda_handler"
    assert payload["AWS_ENDPOINT_URL"] == sandbox.endpoint_url
    assert payload["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert payload["LAMBDA_TASK_ROOT"]


def test_handler_reaches_the_sandbox_through_boto3(aws, make_function):
    bucket = unique("bucket")
    aws("s3").create_bucket(Bucket=bucket)
    source = "import boto3\ndef lambda_handler(event, context):\n    return [b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']]\n"
    arn = make_function(source)
    _, payload = invoke(aws, arn, {})
    assert bucket in payload


def test_layer_modules_are_importable(aws, make_function):
    layer = aws("lambda").publish_layer_version(
        LayerName=unique("layer"), Content={"ZipFile": zip_sources({"python/shared_lib.py": "VALUE = 'from layer'\n"})},
        CompatibleRuntimes=["python3.12"])
    arn = make_function("import shared_lib\ndef lambda_handler(event, context):\n    return shared_lib.VALUE\n",
                        layers=[layer["LayerVersionArn"]])
    _, payload = invoke(aws, arn, {})
    assert payload == "from layer"


def test_warm_worker_keeps_module_state_between_invocations(aws, make_function):
    source = "COUNT = 0\ndef lambda_handler(event, context):\n    global COUNT\n    COUNT += 1\n    return COUNT\n"
    arn = make_function(source)
    invoke(aws, arn, {})
    _, second = invoke(aws, arn, {})
    assert second == 2


def test_concurrent_invocations_share_at_most_max_environments_workers(aws, make_function, sandbox):

    arn = make_function("import os, time\ndef lambda_handler(event, context):\n    time.sleep(0.3)\n"
                        "    return os.getpid()\n")
    limit = sandbox.control("GET", "health")["max_environments"]
    calls = limit + 4
    with ThreadPoolExecutor(calls) as pool:
        pids = list(pool.map(lambda _: invoke(aws, arn, {})[1], range(calls)))
    assert all(isinstance(pid, int) for pid in pids), pids
    assert len(set(pids)) <= limit, f"{len(set(pids))} workers for one function"


def test_import_error_is_reported_as_runtime_import_module_error(aws, make_function):
    arn = make_function("import not_a_module\ndef lambda_handler(event, context):\n    return 1\n")
    response, payload = invoke(aws, arn, {})
    assert response["FunctionError"] == "Handled"
    assert payload["errorType"] == "Runtime.ImportModuleError"


def test_unserializable_result_is_a_marshal_error(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    return object()\n")
    _, payload = invoke(aws, arn, {})
    assert payload["errorType"] == "Runtime.MarshalError"


def test_context_reports_remaining_time_below_the_timeout(aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    return context.get_remaining_time_in_millis()\n",
                        timeout=5)
    _, remaining = invoke(aws, arn, {})
    assert 0 < remaining <= 5000


def test_host_map_sends_a_mapped_hostname_to_the_local_port():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[bool] = []
    thread = threading.Thread(target=lambda: accepted.append(bool(listener.accept())))
    thread.start()
    original = socket.getaddrinfo
    try:
        _bootstrap.install_host_map({"master.redis.example.cache.amazonaws.com": f"127.0.0.1:{port}"})
        socket.create_connection(("master.redis.example.cache.amazonaws.com", 6379), timeout=2).close()
    finally:
        socket.getaddrinfo = original
        thread.join(timeout=2)
        listener.close()
    assert accepted == [True]


def test_an_injected_crash_kills_the_invocation_as_an_exit_error(sandbox, aws, make_function):
    arn = make_function("import time\ndef lambda_handler(event, context):\n    time.sleep(1)\n    return 'done'\n")
    name = arn.split(":")[-1]
    sandbox.control("POST", "faults", {"crash": {"function": name, "count": 1, "after_s": 0.2}})
    crashed = aws("lambda").invoke(FunctionName=arn, Payload=b"{}")
    assert "FunctionError" in crashed
    assert json.loads(crashed["Payload"].read())["errorType"] == "Runtime.ExitError"
    assert "FunctionError" not in aws("lambda").invoke(FunctionName=arn, Payload=b"{}")


def test_a_crash_scoped_by_a_marker_hits_only_invocations_carrying_it(sandbox, aws, make_function):
    arn = make_function("import time\ndef lambda_handler(event, context):\n    time.sleep(0.5)\n    return 'done'\n")
    name = arn.split(":")[-1]
    sandbox.control("POST", "faults", {"crash": {"function": name, "count": 1, "after_s": 0.1,
                                                 "matching": "poison-7"}})
    assert "FunctionError" not in aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "fine-1"}')
    crashed = aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "poison-7"}')
    assert json.loads(crashed["Payload"].read())["errorType"] == "Runtime.ExitError"
    assert "FunctionError" not in aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "poison-7"}')


def test_an_injected_delay_slows_the_marked_invocation_inside_its_duration_and_timeout(sandbox, aws, make_function):
    arn = make_function("def lambda_handler(event, context):\n    return context.get_remaining_time_in_millis()\n",
                        timeout=3)
    name = arn.split(":")[-1]
    sandbox.control("POST", "faults", {"delay": {"function": name, "count": 2, "seconds": 1.5, "matching": "slow"}})
    started = time.monotonic()
    remaining = json.loads(aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "slow"}')["Payload"].read())
    assert time.monotonic() - started >= 1.5 and remaining <= 1600, remaining  # 3 s less the 1.5 s spent
    started = time.monotonic()
    aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "quick"}')
    assert time.monotonic() - started < 1.5
    sandbox.control("POST", "faults", {"delay": {"function": name, "count": 1, "seconds": 5, "matching": "slow"}})
    timed_out = aws("lambda").invoke(FunctionName=arn, Payload=b'{"id": "slow"}')
    assert "Task timed out after 3.00 seconds" in json.loads(timed_out["Payload"].read())["errorMessage"]
    assert sandbox.control("GET", "faults")["delayed"][name] == 2


# Touches the file "started" names (the worker runs on this machine) once it runs, then sleeps.
SLOW = ("import pathlib, time\ndef lambda_handler(event, context):\n"
        "    if event.get('started'):\n        pathlib.Path(event['started']).touch()\n"
        "    time.sleep(event.get('sleep', 0))\n    return 'done'\n")


def test_a_synchronous_invocation_over_the_reserved_concurrency_is_throttled(aws, make_function, tmp_path):
    """Lambda: an invocation beyond the function's reserved concurrency is refused with 429
    TooManyRequestsException, Reason ReservedFunctionConcurrentInvocationLimitExceeded."""
    arn = make_function(SLOW, timeout=30)
    aws("lambda").put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=1)
    started = tmp_path / "started"
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(aws("lambda").invoke, FunctionName=arn,
                              Payload=json.dumps({"sleep": 3, "started": str(started)}).encode())
        wait_until(started.exists, timeout=30, what="the first invocation holding the one slot")
        with pytest.raises(ClientError) as refused:
            aws("lambda").invoke(FunctionName=arn, Payload=b"{}")
        assert running.result()["StatusCode"] == 200
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert refused.value.response.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert json.loads(aws("lambda").invoke(FunctionName=arn, Payload=b"{}")["Payload"].read()) == "done"


def test_a_reserved_concurrency_of_zero_throttles_every_invocation_and_counts_them(aws, sandbox, make_function):
    from .test_metrics import statistic

    arn = make_function(SLOW)
    aws("lambda").put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=0)
    once = boto3.client("lambda", endpoint_url=sandbox.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    for _ in range(2):
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            once.invoke(FunctionName=arn, Payload=b"{}")
    assert statistic(aws, sandbox, "AWS/Lambda", "Throttles", {"FunctionName": arn.split(":")[-1]}, "Sum") == 2
    aws("lambda").delete_function_concurrency(FunctionName=arn)
    assert json.loads(aws("lambda").invoke(FunctionName=arn, Payload=b"{}")["Payload"].read()) == "done"
