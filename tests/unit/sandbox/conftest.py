"""One sandbox server (moto + runner + pollers + gateway, Redis and PostgreSQL; a process of its own)
per test worker,
and helpers that build tiny Lambda functions from source text. Nothing of the sandbox runs in
the test process: its moto patches and threads stay in the server's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tapharness.sandbox.pollers import PollerSettings
from tapharness.sandbox.process import SandboxProcess

from .helpers import Recorder, unique, zip_sources

REGION = "us-east-1"
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com"]},
     "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    box = SandboxProcess.start(
        tmp_path_factory.mktemp("sandbox"),
        poller_settings=PollerSettings(poll_interval=0.05, reconcile_interval=1.0, retry_base_delay=0.05,
                                       retry_max_delay=0.2, sqs_wait_seconds=1),
        scheduler=False,
        services=True,
    )
    yield box
    box.stop()


def client_factory(box: SandboxProcess) -> Callable[[str], Any]:
    """get("sqs") -> a boto3 client of the sandbox, as the harness (administrator)."""
    clients: dict[str, Any] = {}

    def get(service: str) -> Any:
        if service not in clients:
            clients[service] = boto3.client(
                service, endpoint_url=box.endpoint_url, region_name=REGION,
                aws_access_key_id="testing", aws_secret_access_key="testing",
                config=Config(read_timeout=120, retries={"max_attempts": 1}))
        return clients[service]

    return get


@pytest.fixture(scope="session")
def aws(sandbox: SandboxProcess) -> Callable[[str], Any]:
    """aws("sqs") -> a boto3 client of the sandbox."""
    return client_factory(sandbox)


# The delivery tests' functions may do anything: what IAM allows is test_iam_*'s subject.
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@pytest.fixture(scope="session")
def role_arn(aws: Callable[[str], Any]) -> str:
    arn = aws("iam").create_role(RoleName="sandbox-test-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    aws("iam").put_role_policy(RoleName="sandbox-test-role", PolicyName="allow-all", PolicyDocument=ALLOW_ALL)
    return arn


@pytest.fixture
def make_function(aws: Callable[[str], Any], role_arn: str) -> Callable[..., str]:
    """make_function(source, env=..., timeout=..., layers=..., handler=..., log_format=..., vpc_config=...) -> ARN."""

    def make(source: str, env: dict[str, str] | None = None, timeout: int = 10, layers: list[str] | None = None,
             handler: str = "handler.lambda_handler", extra_files: dict[str, str] | None = None,
             log_format: str = "Text", vpc_config: dict[str, list[str]] | None = None) -> str:
        files = {"handler.py": source, **(extra_files or {})}
        response = aws("lambda").create_function(
            FunctionName=unique("fn"), Runtime="python3.12", Role=role_arn, Handler=handler,
            Code={"ZipFile": zip_sources(files)}, Timeout=timeout, MemorySize=256,
            Environment={"Variables": env or {}}, Layers=layers or [], LoggingConfig={"LogFormat": log_format},
            VpcConfig=vpc_config or {})
        return response["FunctionArn"]

    return make


@pytest.fixture
def recorder(aws: Callable[[str], Any]) -> Recorder:
    """An SQS queue that test handlers send what they saw to (env RECORD_QUEUE_URL)."""
    return Recorder(aws("sqs"), aws("sqs").create_queue(QueueName=unique("record"))["QueueUrl"])
