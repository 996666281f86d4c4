"""The sandbox's AWS client factory: boto3 clients against the sandbox endpoint (``AwsClients``),
per principal (``Credentials``), and the Invoke API as an ``Invoker``.

Used by the pollers, the front doors (``apigw``, ``httpapi``, ``alb``), the scheduler, the
endpoint map and the IAM role sessions.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config

from tapharness.sandbox.filters import decode_json


@dataclass
class InvokeOutcome:
    function_error: bool
    payload: Any
    status_code: int


class Invoker(Protocol):
    """Whatever invokes a function as the Lambda service does for its event sources and for API
    Gateway: ``AwsClients`` (the Invoke API) or the sandbox's in-process ``LocalLambda``."""

    def invoke(self, function_arn: str, event: dict[str, Any]) -> InvokeOutcome: ...


@dataclass(frozen=True)
class Credentials:
    """An access key, as STS AssumeRole returns it."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        """The variables an SDK reads them from."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


ADMIN = Credentials("testing", "testing")


# One boto3 session (so one botocore loader) for every factory: a session per principal parsed
# each service's JSON model again for every role session the sandbox opened.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


class AwsClients:
    """The one factory of boto3 clients against the sandbox endpoint.

    Clients are created once per (service, credentials) and shared by every thread (boto3
    clients are thread-safe; only creating them is not, hence the lock). ``as_principal``
    gives the factory of another principal's credentials (a function's execution role).
    """

    def __init__(self, endpoint_url: str, region: str, credentials: Credentials = ADMIN) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self._clients: dict[str, Any] = {}
        self._variants: dict[Credentials, AwsClients] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock, _SESSION_LOCK:
            if service not in self._clients:
                self._clients[service] = _SESSION.client(
                    service, endpoint_url=self.endpoint_url, region_name=self.region,
                    aws_access_key_id=self.credentials.access_key_id,
                    aws_secret_access_key=self.credentials.secret_access_key,
                    aws_session_token=self.credentials.session_token,
                    # Only Invoke waits for a function (up to its 900 s timeout); every other call is quick.
                    config=Config(read_timeout=960 if service == "lambda" else 30, connect_timeout=5,
                                  retries={"max_attempts": 2}, max_pool_connections=64),
                )
            return self._clients[service]

    def queue_url(self, queue_arn: str) -> str:
        """The URL of a queue from its ARN, with no call (Lambda and EventBridge need no GetQueueUrl)."""
        _, _, _, _, account, name = queue_arn.split(":")
        return f"{self.endpoint_url}/{account}/{name}"

    def as_principal(self, credentials: Credentials) -> AwsClients:
        """The factory whose clients sign with ``credentials``."""
        if credentials == self.credentials:
            return self
        with self._lock:
            if credentials not in self._variants:
                self._variants[credentials] = AwsClients(self.endpoint_url, self.region, credentials)
            return self._variants[credentials]

    def invoke(self, function_arn: str, event: dict[str, Any]) -> InvokeOutcome:
        response = self.client("lambda").invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
        raw = response["Payload"].read().decode()
        return InvokeOutcome("FunctionError" in response, decode_json(raw) if raw else None,
                             response["StatusCode"])

    def send_to_destination(self, arn: str, message: dict[str, Any], key: str | None = None) -> None:
        """A failure record to a queue, a topic or (under ``key``) a bucket."""
        service = arn.split(":")[2]
        body = json.dumps(message)
        if service == "sqs":
            self.client("sqs").send_message(QueueUrl=self.queue_url(arn), MessageBody=body)
        elif service == "sns":
            self.client("sns").publish(TopicArn=arn, Message=body)
        elif service == "s3" and key:
            self.client("s3").put_object(Bucket=arn.split(":::", 1)[1], Key=key, Body=body.encode())
        else:
            raise ValueError(f"unsupported on-failure destination {arn}")
