"""Credentials of the roles AWS services assume on the stack's behalf.

Lambda runs a function as its execution role (session named after the function), event
source mappings read their source as that role, Step Functions calls tasks as the state
machine's role, EventBridge starts targets as the target's ``RoleArn``. ``RoleSessions``
first checks the role's trust policy lets that service assume it (AWS's rule), then calls
STS AssumeRole against the sandbox; the keys it returns are what the IAM gate recognises.
Sessions are cached per (role, session name) for the life of the sandbox.

``ServiceGuard`` answers the other half: whether a service principal may deliver to a
queue, topic or function (its resource policy, and the key policy of an encrypted queue or
topic), for the S3 and SNS deliveries moto makes, EventBridge targets and API Gateway.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tapharness.sandbox.clients import AwsClients, Credentials
from tapharness.sandbox.iam.authorizer import (
    Authorizer,
    Verdict,
    delivery_key_arn,
    describe_denial,
)
from tapharness.sandbox.iam.catalog import Need
from tapharness.sandbox.iam.wire import signature


@dataclass(frozen=True)
class CallerVerdict:
    """Whether a request signed for ``execute-api`` may do an action: ``outcome`` is ``allowed``,
    ``unsigned`` (or signed for another service), ``unknown`` (a key no principal holds) or
    ``denied`` (``denial`` is AWS's AccessDenied message)."""

    outcome: str
    denial: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


class AssumeRoleRefused(PermissionError):
    """The role's trust policy does not let the service assume it."""


class RoleSessions:
    """AssumeRole on behalf of AWS services, with the trust policy checked first."""

    def __init__(self, clients: AwsClients, authorizer: Authorizer) -> None:
        self.clients = clients
        self.authorizer = authorizer
        self._sessions: dict[tuple[str, str], Credentials] = {}
        self._lock = threading.Lock()

    def credentials(self, role_arn: str, session_name: str, service: str,
                    source_arn: str | None = None) -> Credentials:
        """The role's credentials as ``service`` (``lambda.amazonaws.com``) gets them."""
        key = (role_arn, session_name)
        with self._lock:
            if key in self._sessions:
                return self._sessions[key]
        account = role_arn.split(":")[4]
        decision = self.authorizer.authorize_service(service, "sts:AssumeRole", role_arn, source_arn, account,
                                                     self.clients.region)
        if not decision.allowed:
            raise AssumeRoleRefused(f"{service} cannot assume {role_arn}: {decision.reason}")
        issued = self.clients.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64],
                                                        DurationSeconds=3600)["Credentials"]
        credentials = Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
        with self._lock:
            return self._sessions.setdefault(key, credentials)

    def clients_for(self, role_arn: str, session_name: str, service: str,
                    source_arn: str | None = None) -> AwsClients:
        """A client factory signing as the role."""
        return self.clients.as_principal(self.credentials(role_arn, session_name, service, source_arn))


class ServiceGuard:
    """What the delivery patches ask: may a service deliver, and whose keys does a task use."""

    def __init__(self, authorizer: Authorizer, sessions: RoleSessions) -> None:
        self.authorizer = authorizer
        self.sessions = sessions

    def role_denial(self, credentials: Credentials, needs: list[Need], label: str, region: str) -> str | None:
        """AWS's AccessDenied message for the first of ``needs`` the role session may not perform; None if all may."""
        principal = self.authorizer.principal_for_key(credentials.access_key_id)
        if principal is None:
            return None
        for need, decision in zip(needs, self.authorizer.decide(principal, needs, label, region), strict=True):
            if not decision.allowed:
                return describe_denial(principal, Verdict(need, decision))
        return None

    def execute_api_caller(self, headers: dict[str, str], query: str, action: str, resource: str,
                           region: str) -> CallerVerdict:
        """An API Gateway request with IAM authorization (a route, a method, ``@connections``)."""
        return self.signed_caller(headers, query, "execute-api", action, resource, region)

    def signed_caller(self, headers: dict[str, str], query: str, signer: str, action: str, resource: str,
                      region: str) -> CallerVerdict:
        """A request a data plane authorizes with IAM (API Gateway, Neptune): the caller must sign for
        ``signer`` and be allowed ``action`` on ``resource`` by its identity policies. ``headers``
        lower-cased. Signatures are read, not recomputed (docs/emulation-gaps.md)."""
        signed = signature(headers, query)
        if signed is None or signed.signer != signer:
            return CallerVerdict("unsigned")
        principal = self.authorizer.principal_for_key(signed.access_key)
        if principal is None:
            return CallerVerdict("unknown")
        need = Need(action, resource)
        (decision,) = self.authorizer.decide(principal, [need], action.replace(":", "."), region)
        if decision.allowed:
            return CallerVerdict("allowed")
        return CallerVerdict("denied", describe_denial(principal, Verdict(need, decision)))

    def may_deliver(self, service: str, target_arn: str, source_arn: str, account: str) -> bool:
        """Whether ``service`` may deliver to a queue, topic or function (and use the queue's key)."""
        kind = target_arn.split(":")[2]
        action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish", "lambda": "lambda:InvokeFunction"}.get(kind)
        if action is None:
            return True
        region = target_arn.split(":")[3]
        if not self.authorizer.authorize_service(service, action, target_arn, source_arn, account, region).allowed:
            return False
        key_arn = delivery_key_arn(target_arn)
        return key_arn is None or all(
            self.authorizer.authorize_service(service, kms_action, key_arn, source_arn, account, region).allowed
            for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"))
