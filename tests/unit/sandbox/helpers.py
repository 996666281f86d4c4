"""Helpers of the sandbox tests: tiny function zips, unique names, bounded waits."""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any


def zip_sources(files: dict[str, str]) -> bytes:
    """A zip of ``{"path/in/zip.py": "source"}`` (sources are dedented)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, textwrap.dedent(source))
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def role_credentials(aws: Callable[[str], Any], statements: list[dict[str, Any]],
                     name: str = "caller") -> dict[str, str]:
    """The keys of a new role the account may assume, allowed ``statements`` (none: nothing)."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]})
    arn = aws("iam").create_role(RoleName=unique(name), AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    if statements:
        aws("iam").put_role_policy(RoleName=arn.split("/")[-1], PolicyName="p",
                                   PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return aws("sts").assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]


class Recorder:
    """Collects the JSON messages test handlers send, in arrival order."""

    HANDLER_HELPER = (
        "import json, os, boto3\n"
        "def record(payload):\n"
        "    boto3.client('sqs').send_message(QueueUrl=os.environ['RECORD_QUEUE_URL'], MessageBody=json.dumps(payload))\n"
    )

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.seen: list[Any] = []

    @property
    def env(self) -> dict[str, str]:
        return {"RECORD_QUEUE_URL": self.url}

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0,
                 what: str = "records") -> list[Any]:
        """Read messages until ``predicate(all seen)`` holds; fails with what was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.seen):
                return self.seen
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            for message in messages:
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            if not messages:
                time.sleep(0.05)
        if predicate(self.seen):
            return self.seen
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; seen: {self.seen}")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
