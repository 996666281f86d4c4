"""S3: bucket Intelligent-Tiering configurations, event notifications as AWS sends them, bucket
policies judged by the sandbox's IAM evaluator, and under IAM (``patches.GUARD``) each
notification's target checked against its policy."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from moto.core.utils import unix_time
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response

from tapharness.sandbox import patches
from tapharness.sandbox.patches import patch

# S3: bucket Intelligent-Tiering configurations (?intelligent-tiering) are not implemented by moto.
_BUCKET_RESPONSE = S3Response._bucket_response
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")
_S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


@patch(S3Response, "_bucket_response")
def _bucket_response(self: S3Response, request: Any, full_url: str) -> Any:
    """Bucket requests, with PUT/GET/DELETE/LIST of Intelligent-Tiering configurations kept as sent."""
    querystring = self._get_querystring(request, full_url)
    if "intelligent-tiering" not in querystring:
        return _BUCKET_RESPONSE(self, request, full_url)
    bucket = self.backend.get_bucket(self.parse_bucket_name_from_url(request, full_url))
    configurations = bucket.__dict__.setdefault("_sandbox_intelligent_tiering", {})
    config_id = (querystring.get("id") or [None])[0]
    if request.method == "PUT":
        configurations[config_id] = _XML_DECLARATION.sub("", request.data.decode())
        return 200, {}, ""
    if request.method == "DELETE":
        configurations.pop(config_id, None)
        return 204, {}, ""
    if config_id is not None:
        if config_id not in configurations:
            return 404, {}, ("<Error><Code>NoSuchConfiguration</Code>"
                             "<Message>The specified configuration does not exist.</Message></Error>")
        return 200, {}, configurations[config_id]
    body = "".join(re.sub(r"<IntelligentTieringConfiguration[^>]*>", "<IntelligentTieringConfiguration>", c)
                   for c in configurations.values())
    return 200, {}, (f'<ListBucketIntelligentTieringConfigurationsOutput xmlns="{_S3_NAMESPACE}">'
                     f"<IsTruncated>false</IsTruncated>{body}</ListBucketIntelligentTieringConfigurationsOutput>")


# S3 event notifications: moto encodes the key with quote_plus, "/" included; AWS keeps "/".
# moto also leaves out the object's versionId (AWS sends it for a versioning-enabled bucket,
# and a reader of that version needs s3:GetObjectVersion) and the sequencer.
_GET_S3_EVENT = s3_notifications._get_s3_event


@patch(s3_notifications, "_get_s3_event")
def _s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, list[dict[str, Any]]]:
    event = _GET_S3_EVENT(event_name, bucket, key, notification_id)
    for record in event["Records"]:
        obj = record["s3"]["object"]
        obj["key"] = quote_plus(key.name, safe="/")
        if bucket.is_versioned and getattr(key, "version_id", None):
            obj["versionId"] = key.version_id
        obj["sequencer"] = f"{int(unix_time() * 1_000_000):016X}"
    return event


@patch(FakeBucket, "get_permission")
def _bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    """moto's own bucket-policy check (it runs for every object request, whoever signs it),
    made by the sandbox's IAM evaluator: DENIED on an explicit ``Deny`` that applies, or on a
    policy AWS would have refused (an undefined condition operator); PERMITTED when it grants
    everyone (an anonymous request the gate let through); otherwise NEUTRAL, and the IAM gate
    decides the caller's own permissions. moto's check applied a statement
    whatever its condition said, so a TLS-only ``Deny`` denied every object call.
    """
    from moto.iam.access_control import PermissionResult

    from tapharness.sandbox.iam.authorizer import ANONYMOUS, request_context
    from tapharness.sandbox.iam.policy import (
        AuthzRequest,
        PolicySource,
        Principal,
        evaluate,
    )

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = self.policy.decode() if isinstance(self.policy, bytes) else self.policy
    caller = Principal(f"arn:aws:iam::{self.account_id}:root", self.account_id)
    context = request_context(caller, self.region_name)
    decision = evaluate(AuthzRequest(caller, action, resource, context), (),
                        PolicySource(f"bucket policy of {self.name}", document))
    if decision.reason.startswith(("explicit deny", "policy error")):
        return PermissionResult.DENIED
    # A grant to everyone lets an unsigned (anonymous) request through, which moto otherwise
    # refuses unless the object's ACL is public-read; the IAM gate has decided it already.
    anonymous = evaluate(AuthzRequest(ANONYMOUS, action, resource, request_context(ANONYMOUS, self.region_name)), (),
                         PolicySource(f"bucket policy of {self.name}", document))
    return PermissionResult.PERMITTED if anonymous.allowed else PermissionResult.NEUTRAL


# --- Service-to-service calls under IAM (see ``patches.GUARD``) -------------------------
# moto delivers S3 notifications inline; AWS checks the target's resource policy (function
# permission, queue policy, and the queue's key policy for an encrypted queue) for
# s3.amazonaws.com with aws:SourceArn/aws:SourceAccount.


_S3_SEND_EVENT = s3_notifications.send_event


@patch(s3_notifications, "send_event")
def _s3_send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    """S3 event notifications, each target first checked for s3.amazonaws.com and the bucket."""
    config = bucket.notification_configuration
    if patches.GUARD is None or config is None:
        _S3_SEND_EVENT(account_id, event_name, bucket, key)
        return
    senders: list[tuple[list[Any], Callable[[str, Any, str, str], None]]] = [
        (config.cloud_function, s3_notifications._invoke_awslambda),
        (config.queue, lambda account, body, arn, region: s3_notifications._send_sqs_message(
            account, body, arn.split(":")[-1], region)),
        (config.topic, s3_notifications._send_sns_message),
    ]
    for notifications, send in senders:
        for notification in notifications:
            if notification.matches(event_name, key.name) and patches.GUARD.may_deliver(
                    "s3.amazonaws.com", notification.arn, bucket.arn, account_id):
                body = s3_notifications._get_s3_event(event_name, bucket, key, notification.id)
                send(account_id, body, notification.arn, notification.arn.split(":")[3])
    if config.event_bridge is not None:
        s3_notifications._send_event_bridge_message(account_id, bucket, event_name, key)
