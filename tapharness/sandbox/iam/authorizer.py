"""Who is calling, which policies apply, what AWS would decide, and a record of every decision.

Principals come from moto's own credential stores: an access key issued by STS AssumeRole is
that role's session (``arn:aws:sts::<acct>:assumed-role/<role>/<session>``), a key made by
IAM CreateAccessKey is that user. Any other key is the harness itself (tests, deploys,
the demo), which stays administrator and is not recorded.

Policies are read from moto's backends at decision time (so a policy changed through the
API applies to the next call): a role's inline and attached managed policies and its
permissions boundary; a user's, plus its groups'; and the resource's own policy (S3
bucket, SQS queue, SNS topic, Lambda function, KMS key, Secrets Manager secret, DynamoDB table
or stream, Kinesis stream, EventBridge event bus).

Calls on resources encrypted with a customer managed KMS key also need the KMS actions AWS
checks on the caller's behalf (``_KMS_ON_BEHALF``): S3 objects in a bucket whose default
encryption is SSE-KMS, SQS queues and SNS topics with ``KmsMasterKeyId``, Kinesis streams
with KMS encryption, Secrets Manager secrets with a ``KmsKeyId``. AWS-managed keys
(``alias/aws/...``) allow every principal of the account through the service, so they need
nothing.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tapharness.sandbox.iam import catalog
from tapharness.sandbox.iam.catalog import Need, UnmappedCall
from tapharness.sandbox.iam.policy import (
    AuthzRequest,
    Decision,
    PolicySource,
    Principal,
    evaluate,
)
from tapharness.sandbox.iam.wire import ApiCall

# Set by the function workers' network check (``tapharness/sandbox/_bootstrap.py``).
SOURCE_VPC_HEADER = "x-tapstack-source-vpc"
SOURCE_VPCE_HEADER = "x-tapstack-source-vpce"

PARTITION = "aws"
# Who an unsigned request is: no account, no policies of its own.
ANONYMOUS = Principal("anonymous", "")


@dataclass(frozen=True)
class Verdict:
    """One (action, resource) of a call and what was decided."""

    need: Need
    decision: Decision


@dataclass
class Record:
    """Aggregated decisions of one principal for one (action, resource, outcome)."""

    principal: str
    role: str
    action: str
    resource: str
    allowed: bool
    reason: str
    call: str
    count: int = 0
    first: float = 0.0
    last: float = 0.0


class DecisionLog:
    """Every decision of the run, aggregated so that load does not grow it."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str, bool, str], Record] = {}
        self._lock = threading.Lock()

    def add(self, principal: Principal, call: str, need: Need, decision: Decision) -> None:
        role = principal.role_arn or principal.service or principal.arn
        key = (principal.arn, need.action, need.resource, decision.allowed, call)
        now = time.time()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = Record(principal.arn, role, need.action, need.resource,
                                                     decision.allowed, decision.reason, call, first=now)
            record.count += 1
            record.last = now

    def records(self) -> list[Record]:
        with self._lock:
            return [replace(r) for r in self._records.values()]


_BACKEND_MODULES = {"awslambda": ("moto.awslambda.models", "lambda_backends")}


def backends(name: str) -> Any:
    """moto's backends of a service (``backends("sqs")[account][region]``)."""
    module_name, attribute = _BACKEND_MODULES.get(name, (f"moto.{name}.models", f"{name}_backends"))
    return getattr(importlib.import_module(module_name), attribute)


def _default_version(policy: Any) -> str:
    for version in policy.versions:
        if version.is_default:
            return version.document
    return policy.versions[-1].document


class Authorizer:
    """Decides requests of role sessions, users and service principals against moto's IAM."""

    def __init__(self) -> None:
        self.log = DecisionLog()
        self._principals: dict[str, Principal | None] = {}
        self._lock = threading.Lock()

    # --- principals -------------------------------------------------------------------

    def principal_for_key(self, access_key: str) -> Principal | None:
        """The role session or user an access key belongs to; None for the harness's own keys."""
        # A key is only ever seen after the call that issued it, so "not moto's" is final too.
        with self._lock:
            if access_key in self._principals:
                return self._principals[access_key]
        principal = self._lookup(access_key)
        with self._lock:
            self._principals[access_key] = principal
        return principal

    @staticmethod
    def _lookup(access_key: str) -> Principal | None:
        sts = backends("sts")
        for account in list(sts.keys()):
            assumed = sts[account][PARTITION].get_assumed_role_from_access_key(access_key)
            if assumed:
                return Principal(assumed.arn, assumed.role_arn.split(":")[4], role_arn=assumed.role_arn)
        iam = backends("iam")
        for account in list(iam.keys()):
            user = iam[account][PARTITION].get_user_from_access_key_id(access_key)
            if user:
                return Principal(user.arn, account)
        return None

    # --- policies ---------------------------------------------------------------------

    @staticmethod
    def identity_policies(principal: Principal) -> tuple[list[PolicySource], list[PolicySource] | None]:
        """(identity policies, permissions boundary or None) of a role session or user."""
        sources, boundary, _ = Authorizer.identity(principal)
        return sources, boundary

    @staticmethod
    def identity(principal: Principal) -> tuple[list[PolicySource], list[PolicySource] | None, dict[str, list[str]]]:
        """(identity policies, permissions boundary or None, ``aws:PrincipalTag/<key>`` context) of a
        role session or user, from one look-up of the role or user. Principal tags are "included in
        the request context ... for a principal using an IAM role with attached tags" (IAM, global
        condition context keys); session tags are not modelled: the sandbox's sessions are untagged."""
        iam = backends("iam")[principal.account][PARTITION]
        sources: list[PolicySource] = []
        boundary_arn = None
        if principal.role_arn:
            try:
                entity = iam.get_role_by_arn(principal.role_arn)
            except Exception:  # noqa: BLE001 - moto raises its own not-found types; a deleted role has no policies
                return [], None, {}
            owners = [(f"role/{entity.name}", entity)]
            boundary_arn = entity.permissions_boundary_arn
        else:
            name = principal.arn.rsplit("/", 1)[-1]
            entity = iam.get_user(name)
            owners = [(f"user/{name}", entity)]
            owners += [(f"group/{g.name}", g) for g in iam.get_groups_for_user(name)]
            boundary_arn = getattr(entity, "permissions_boundary_arn", None)
        for owner, holder in owners:
            for policy_name, document in holder.policies.items():
                sources.append(PolicySource(f"{owner} inline policy {policy_name}", document))
            for arn, managed in holder.managed_policies.items():
                sources.append(PolicySource(f"managed policy {arn}", _default_version(managed)))
        boundary = None
        if boundary_arn:
            boundary = [PolicySource(f"permissions boundary {boundary_arn}",
                                     _default_version(iam.get_policy(boundary_arn)))]
        tags = {f"aws:principaltag/{tag['Key'].lower()}": [tag["Value"]] for tag in entity.tags or []}
        return sources, boundary, tags

    @staticmethod
    def resource_policy(arn: str) -> PolicySource | None:
        """The resource-based policy of ``arn``, when its service has them and one is set."""
        if arn == "*" or not arn.startswith("arn:"):
            return None
        _, _, service, region, account, rest = arn.split(":", 5)
        document: Any = None
        try:
            if service == "s3":
                account_id = _s3_owner(rest.split("/", 1)[0])
                bucket = backends("s3")[account_id][PARTITION].buckets.get(rest.split("/", 1)[0])
                document = bucket.policy if bucket else None
            elif service == "sqs":
                queue = backends("sqs")[account][region].queues.get(rest)
                document = queue.policy if queue else None
            elif service == "sns":
                topic = backends("sns")[account][region].topics.get(arn)
                document = topic.policy if topic else None
            elif service == "lambda":
                function = backends("awslambda")[account][region].get_function(rest.split(":")[1])
                statements = function.policy.statements if function.policy else []
                document = {"Version": "2012-10-17", "Statement": statements} if statements else None
            elif service == "kms":
                key = backends("kms")[account][region].keys.get(rest.split("/", 1)[1])
                document = key.policy if key else None
            elif service == "iam" and rest.startswith("role/"):
                document = backends("iam")[account][PARTITION].get_role_by_arn(arn).assume_role_policy_document
            elif service == "secretsmanager":
                secret = backends("secretsmanager")[account][region].secrets.get(arn)
                document = getattr(secret, "policy", None) if secret else None
            elif service == "dynamodb":
                # A table's policy covers its indexes; a stream has a policy of its own (DynamoDB,
                # "Using resource-based policies for DynamoDB").
                parts = rest.split("/")
                owner = arn if "stream" in parts else f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{parts[1]}"
                policy = backends("dynamodb")[account][region].resource_policies.get(owner)
                document = policy.policy_doc if policy else None
            elif service == "kinesis":
                document = backends("kinesis")[account][region].resource_policies.get(arn)
            elif service == "events" and rest.startswith("event-bus/"):
                bus = backends("events")[account][region].event_buses.get(rest.split("/", 1)[1])
                document = bus.policy if bus else None
        except Exception:  # noqa: BLE001 - no such resource: moto's not-found errors share no base class
            return None
        if not document:
            return None
        if isinstance(document, bytes):
            document = document.decode()
        return PolicySource(f"{service} resource policy of {arn}", document)

    # --- decisions --------------------------------------------------------------------

    def authorize(self, principal: Principal, call: ApiCall) -> list[Verdict]:
        """Every (action, resource) the call needs, each decided; an unmappable call is one denial."""
        label = f"{call.service or call.signing_name}.{call.operation or '?'}"
        try:
            needs = catalog.needs(call, principal.account)
            needs += kms_on_behalf(call, needs, principal.account)
        except UnmappedCall as exc:
            return [self._unmapped(principal, call, label, exc)]
        endpoint = self.source_endpoint(call, principal.account)
        return [Verdict(need, decision) for need, decision in
                zip(needs, self.decide(principal, needs, label, call.region, endpoint), strict=True)]

    @staticmethod
    def source_endpoint(call: ApiCall, account: str) -> SourceEndpoint | None:
        """The VPC endpoint a function's call came through (the sandbox's network marks it): AWS then
        sets ``aws:SourceVpc`` and ``aws:SourceVpce`` ("only present in the request context when the
        requester uses a VPC endpoint", IAM, global condition context keys), and the endpoint's own
        policy must allow the call too ("an endpoint policy does not override or replace identity-based
        policies or resource-based policies", PrivateLink Guide, "Control access to VPC endpoints
        using endpoint policies")."""
        vpce = call.headers.get(SOURCE_VPCE_HEADER, "")
        if not vpce:
            return None
        policy = None
        try:
            found = backends("ec2")[account][call.region].vpc_end_points.get(vpce)
            policy = getattr(found, "policy_document", None)
        except (KeyError, AttributeError):
            pass
        return SourceEndpoint(call.headers.get(SOURCE_VPC_HEADER, ""), vpce,
                              PolicySource(f"policy of VPC endpoint {vpce}", policy) if policy else None)

    def authorize_anonymous(self, call: ApiCall) -> list[Verdict]:
        """An unsigned request, as AWS serves one: anonymous, allowed only where a resource policy
        grants ``*`` ("a resource-based policy that allows anonymous access", IAM policy evaluation
        logic); an object under a customer managed key is never readable anonymously."""
        label = f"{call.service or call.signing_name}.{call.operation or '?'} (unsigned)"
        try:
            needs = catalog.needs(call, "")
        except UnmappedCall as exc:
            return [self._unmapped(ANONYMOUS, call, label, exc)]
        verdicts = []
        for need in needs:
            if kms_on_behalf(call, [need], ""):
                decision = Decision(False, "an object under a customer managed key is not served anonymously")
            else:
                context = {**request_context(ANONYMOUS, call.region), **need.context}
                decision = evaluate(AuthzRequest(ANONYMOUS, need.action, need.resource, context), (),
                                    self.resource_policy(need.resource))
            self.log.add(ANONYMOUS, label, need, decision)
            verdicts.append(Verdict(need, decision))
        return verdicts

    def _unmapped(self, principal: Principal, call: ApiCall, label: str, exc: UnmappedCall) -> Verdict:
        """A call the catalogue cannot map: one denial, recorded."""
        need = Need(f"{catalog.iam_prefix(call)}:{call.operation or '?'}", "*")
        decision = Decision(False, f"the sandbox cannot authorize this call: {exc}")
        self.log.add(principal, label, need, decision)
        return Verdict(need, decision)

    def allows(self, principal: Principal, actions: tuple[str, ...], resource: str, label: str, region: str) -> bool:
        """Whether every action a service performs with the principal's credentials (Lambda's logs) is allowed."""
        needs = [Need(action, resource) for action in actions]
        return all(d.allowed for d in self.decide(principal, needs, label, region))

    def decide(self, principal: Principal, needs: list[Need], label: str, region: str,
               endpoint: SourceEndpoint | None = None) -> list[Decision]:
        """The decision on each of ``needs`` (with their condition context), recorded in the report."""
        identity, boundary, tags = self.identity(principal)
        base = request_context(principal, region) | tags
        through = {"aws:sourcevpc": [endpoint.vpc], "aws:sourcevpce": [endpoint.vpce]} if endpoint else {}
        # A forward access session (KMS called by DynamoDB, SQS, S3 ... with the caller's identity) is
        # the service's own request downstream ("Forward access sessions", IAM User Guide): it does
        # not travel through the caller's VPC endpoint, so neither the endpoint's keys nor its
        # policy apply to it.
        return [self._decide(principal, need, label, base if _forwarded(need) else base | through, identity,
                             boundary, None if _forwarded(need) else endpoint) for need in needs]

    def _decide(self, principal: Principal, need: Need, label: str, base: dict[str, list[str]],
                identity: list[PolicySource], boundary: list[PolicySource] | None,
                endpoint: SourceEndpoint | None = None) -> Decision:
        if need.action in catalog.ALWAYS_ALLOWED:
            decision = Decision(True, "always allowed")
        else:
            context = {**base, **need.context}
            resource = self.resource_policy(need.resource)
            if _mentions_resource_tags([*identity, *(boundary or []), *([resource] if resource else [])]) \
                    and catalog.resource_tagged(need.action, need.resource):
                context |= {f"aws:resourcetag/{key.lower()}": [value]
                            for key, value in resource_tags(need.resource).items()}
            decision = evaluate(AuthzRequest(principal, need.action, need.resource, context),
                                identity, resource, boundary, key_policy=need.action.startswith("kms:"))
            if decision.allowed and endpoint is not None and endpoint.policy is not None:
                through = evaluate(AuthzRequest(principal, need.action, need.resource, context), (), endpoint.policy)
                if not through.allowed:
                    decision = Decision(False, f"the {endpoint.policy.name} does not allow it: {through.reason}")
        self.log.add(principal, label, need, decision)
        return decision

    def authorize_service(self, service: str, action: str, resource: str, source_arn: str | None,
                          source_account: str, region: str, context: dict[str, list[str]] | None = None) -> Decision:
        """May ``service`` (``apigateway.amazonaws.com``) perform ``action`` on ``resource`` for ``source_arn``?

        The resource's own policy decides (a function's permissions, a queue's or topic's
        policy, a key policy, a role's trust policy); the service sends ``aws:SourceArn``
        (when it has one) and ``aws:SourceAccount``, as AWS services do, and ``context`` (an
        encryption context) when the service sends one.
        """
        principal = Principal(f"service:{service}", source_account, service=service)
        request = {**request_context(principal, region), "aws:sourceaccount": [source_account], **(context or {})}
        if source_arn:
            request["aws:sourcearn"] = [source_arn]
        policy = self.resource_policy(resource)
        decision = evaluate(AuthzRequest(principal, action, resource, request), (), policy,
                            key_policy=action.startswith("kms:"))
        self.log.add(principal, f"{service} → {action}", Need(action, resource), decision)
        return decision


def _forwarded(need: Need) -> bool:
    return need.context.get("aws:viaawsservice") == ["true"]


@dataclass(frozen=True)
class SourceEndpoint:
    """The VPC endpoint a call came through, and its policy (None: the default, full access)."""

    vpc: str
    vpce: str
    policy: PolicySource | None


def _mentions_resource_tags(sources: list[PolicySource]) -> bool:
    """Whether a policy in play can read aws:ResourceTag (the tags are looked up only then)."""
    return any("resourcetag" in (s.document if isinstance(s.document, str) else json.dumps(s.document)).lower()
               for s in sources)


def resource_tags(arn: str) -> dict[str, str]:
    """The tags of the resource ``arn`` names, from moto's model of its service ({} when it has none)."""
    _, _, service, region, account, rest = arn.split(":", 5)
    try:
        if service == "lambda":
            return dict(backends("awslambda")[account][region].list_tags(arn))
        if service == "dynamodb":
            table = f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{rest.split('/')[1]}"
            return {t["Key"]: t["Value"] for t in backends("dynamodb")[account][region].list_tags_of_resource(table)}
        if service == "sqs":
            return dict(backends("sqs")[account][region].queues[rest].tags)
        if service == "sns":
            return dict(backends("sns")[account][region].list_tags_for_resource(arn))
        if service == "kinesis":
            return dict(backends("kinesis")[account][region].streams[rest.split("/")[1]].tags)
        if service == "kms":
            return {t["TagKey"]: t["TagValue"]
                    for t in backends("kms")[account][region].list_resource_tags(arn)["Tags"]}
        if service == "secretsmanager":
            secret = backends("secretsmanager")[account][region].secrets[arn]
            return {t["Key"]: t["Value"] for t in secret.tags or []}
        if service == "states":
            return {t["key"]: t["value"] for t in backends("stepfunctions")[account][region].list_tags_for_resource(
                arn)["tags"]}
        if service == "s3":
            bucket = rest.split("/", 1)[0]
            tagging = backends("s3")[_s3_owner(bucket)][PARTITION].get_bucket_tagging(bucket)
            return {t["Key"]: t["Value"] for t in tagging.get("Tags", [])}
    except Exception:  # noqa: BLE001 - no such resource (moto's not-found errors share no base class): no tags
        return {}
    return {}


def _s3_owner(bucket: str) -> str:
    s3 = backends("s3")
    for account in list(s3.keys()):
        if bucket in s3[account][PARTITION].buckets:
            return account
    raise LookupError(bucket)


def request_context(principal: Principal, region: str) -> dict[str, list[str]]:
    """The global condition keys every request carries. ``aws:ViaAWSService`` "is always included"
    and is false for a call the principal makes itself (a call a service makes with the principal's
    credentials sets it true: ``kms_on_behalf``); ``aws:PrincipalOrgID`` is absent, as it is for an
    account in no organization (IAM, global condition context keys)."""
    now = time.time()
    context = {
        "aws:securetransport": ["true"],
        "aws:viaawsservice": ["false"],
        "aws:currenttime": [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))],
        "aws:epochtime": [str(int(now))],
        "aws:requestedregion": [region],
        "aws:principalaccount": [principal.account],
    }
    if principal.service:
        context["aws:principalservicename"] = [principal.service]
    elif principal is ANONYMOUS:
        del context["aws:principalaccount"]
    else:
        context["aws:principalarn"] = [principal.role_arn or principal.arn]
        context["aws:principaltype"] = ["AssumedRole" if principal.role_arn else "User"]
        if not principal.role_arn:
            context["aws:username"] = [principal.arn.rsplit("/", 1)[-1]]
    return context


# --- KMS on the caller's behalf ----------------------------------------------------------


def _s3_key(call: ApiCall, need: Need) -> str | None:
    """Reads: the key the object was written with; writes: the request's or the bucket default's."""
    bucket_name, _, key_name = need.resource.split(":::", 1)[-1].partition("/")
    bucket = backends("s3")[_s3_owner(bucket_name)][PARTITION].buckets[bucket_name]
    if need.action != "s3:PutObject":
        stored = bucket.keys.get(key_name)
        if stored is None or stored.encryption != "aws:kms":
            return None
        return stored.kms_key_id or "alias/aws/s3"
    if call.headers.get("x-amz-server-side-encryption") == "AES256":
        return None
    header = call.headers.get("x-amz-server-side-encryption-aws-kms-key-id")
    if header:
        return header
    rules = (bucket.encryption or {}).get("Rule")
    for rule in rules if isinstance(rules, list) else [rules] if rules else []:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
            return default.get("KMSMasterKeyID") or "alias/aws/s3"
    return None


def _target_key(arn: str) -> str | None:
    """The KMS key id/alias of an SQS queue or SNS topic (from moto's model), if encrypted."""
    _, _, service, region, account, name = arn.split(":", 5)
    if service == "sqs":
        target = backends("sqs")[account][region].queues.get(name)
    elif service == "sns":
        target = backends("sns")[account][region].topics.get(arn)
    else:
        return None
    return getattr(target, "kms_master_key_id", None) or None


def _queue_or_topic_key(call: ApiCall, need: Need) -> str | None:
    return _target_key(need.resource)


def delivery_key_arn(target_arn: str) -> str | None:
    """The customer managed key a service must be allowed to use to deliver to a queue or topic."""
    key = _target_key(target_arn)
    _, _, _, region, account, _ = target_arn.split(":", 5)
    return key_arn(key, region, account) if key else None


def _stream_key(call: ApiCall, need: Need) -> str | None:
    _, _, _, region, account, rest = need.resource.split(":", 5)
    stream = backends("kinesis")[account][region].streams.get(rest.split("/", 1)[1])
    if stream and getattr(stream, "encryption_type", "NONE") == "KMS":
        return stream.key_id
    return None


def _secret_key(call: ApiCall, need: Need) -> str | None:
    _, _, _, region, account, _ = need.resource.split(":", 5)
    secret = backends("secretsmanager")[account][region].secrets.get(need.resource)
    return getattr(secret, "kms_key_id", None) if secret else None


def _table_key(call: ApiCall, need: Need) -> str | None:
    """The KMS key of a table (or of the table an index belongs to); None for the AWS owned key."""
    _, _, _, region, account, rest = need.resource.split(":", 5)
    table = backends("dynamodb")[account][region].tables.get(rest.split("/")[1])
    sse = getattr(table, "sse_specification", None) or {}
    return sse.get("KMSMasterKeyId") if sse.get("Enabled") in (True, "true", "True") else None


# DynamoDB decrypts a table's key with the credentials of "the principal in your AWS account who is
# accessing the table" (KMS developer guide, "How Amazon DynamoDB uses AWS KMS",
# https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html#dynamodb-cmk-trail), with
# the table name and account as encryption context. AWS caches the key for five minutes per
# connection; every item call here needs the caller's kms:Decrypt, which decides the same way.
# Stream reads are not listed: neither DynamoDB's nor Lambda's documentation asks a stream reader for KMS.
_DYNAMODB_ITEM_ACTIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem", "Query", "Scan",
                          "BatchGetItem", "BatchWriteItem")

KeyFinder = Callable[[ApiCall, Need], "str | None"]
# action -> (the KMS actions AWS checks for the caller, where the key is found)
_KMS_ON_BEHALF: dict[str, tuple[tuple[str, ...], KeyFinder]] = {
    "s3:PutObject": (("kms:GenerateDataKey",), _s3_key),
    "s3:GetObject": (("kms:Decrypt",), _s3_key),
    "s3:GetObjectVersion": (("kms:Decrypt",), _s3_key),
    # "the producer must have the kms:Decrypt and kms:GenerateDataKey permissions for the KMS key"
    # (SQS developer guide, key management): Decrypt checks the integrity of a new data key.
    "sqs:SendMessage": (("kms:GenerateDataKey", "kms:Decrypt"), _queue_or_topic_key),
    "sqs:ReceiveMessage": (("kms:Decrypt",), _queue_or_topic_key),
    "sns:Publish": (("kms:GenerateDataKey", "kms:Decrypt"), _queue_or_topic_key),
    "kinesis:PutRecord": (("kms:GenerateDataKey",), _stream_key),
    "kinesis:PutRecords": (("kms:GenerateDataKey",), _stream_key),
    "kinesis:GetRecords": (("kms:Decrypt",), _stream_key),
    "secretsmanager:GetSecretValue": (("kms:Decrypt",), _secret_key),
    **{f"dynamodb:{action}": (("kms:Decrypt",), _table_key) for action in _DYNAMODB_ITEM_ACTIONS},
}


def kms_checked_for(action: str) -> tuple[str, ...]:
    """The KMS actions AWS checks for the caller of ``action`` on a resource under a customer managed key."""
    entry = _KMS_ON_BEHALF.get(action)
    return entry[0] if entry else ()


def key_arn(key: str, region: str, account: str) -> str | None:
    """A key id, key ARN, alias name or alias ARN as the key's ARN; None for AWS-managed keys (an
    ``alias/aws/<service>`` alias names them, as for the key moto makes a table with no key given)."""
    if "alias/aws/" in key:
        return None
    kms = backends("kms")[account][region]
    try:
        key_id = kms.any_id_to_key_id(key)
    except (KeyError, LookupError, TypeError):
        return None
    if any(alias.alias_name.startswith("alias/aws/") for alias in kms.list_aliases(key_id)):
        return None
    return f"arn:{PARTITION}:kms:{region}:{account}:key/{key_id}"


# "aws:CalledVia ... athena.amazonaws.com, cloudformation.amazonaws.com, dynamodb.amazonaws.com,
# kms.amazonaws.com" (IAM, global condition context keys: the services that set it).
CALLED_VIA_SERVICES = frozenset({"athena", "cloudformation", "dynamodb", "kms"})


def via_service(service: str) -> dict[str, list[str]]:
    """The context of a call ``service`` makes with the caller's credentials (a forward access
    session): "The aws:ViaAWSService condition key value is set to true whenever a FAS request is
    made"; aws:CalledVia names the service where it is one that sets it (IAM, forward access sessions)."""
    context = {"aws:viaawsservice": ["true"]}
    if service in CALLED_VIA_SERVICES:
        via = [f"{service}.amazonaws.com"]
        context |= {"aws:calledvia": via, "aws:calledviafirst": via, "aws:calledvialast": via}
    return context

# "the requester needs permissions for the kms:Decrypt action on the UploadPart and UploadPartCopy
# APIs" (CreateMultipartUpload, S3 API reference); CreateMultipartUpload itself needs GenerateDataKey.
_MULTIPART_PARTS = frozenset({"UploadPart", "UploadPartCopy"})


def kms_on_behalf(call: ApiCall, needs: list[Need], account: str) -> list[Need]:
    """The KMS (action, key) pairs AWS checks for the caller of ``needs``."""
    extra = []
    for need in needs:
        entry = _KMS_ON_BEHALF.get(need.action)
        if entry is None or need.resource == "*":
            continue
        actions, find = entry
        if need.action == "s3:PutObject" and call.operation in _MULTIPART_PARTS:
            actions = ("kms:Decrypt",)
        try:
            key = find(call, need)
        except (KeyError, IndexError, LookupError):
            continue
        arn = key_arn(key, call.region, account) if key else None
        if arn is None:
            continue
        service = need.action.split(":")[0]
        context = {"kms:viaservice": [f"{service}.{call.region}.amazonaws.com"], "kms:calleraccount": [account],
                   **via_service(service)}
        if service == "dynamodb":
            context |= {"kms:encryptioncontext:aws:dynamodb:tablename": [need.resource.split("/")[1]],
                        "kms:encryptioncontext:aws:dynamodb:subscriberid": [account]}
        extra += [Need(action, arn, context) for action in actions
                  if all((action, arn) != (e.action, e.resource) for e in extra)]
    return extra


def describe_denial(principal: Principal, verdict: Verdict) -> str:
    """AWS's AccessDenied message for a denied (action, resource)."""
    reason = verdict.decision.reason
    if reason.startswith("explicit deny"):
        why = f"with an {reason}"
    elif reason.startswith("no identity-based policy"):
        why = f"because no identity-based policy allows the {verdict.need.action} action"
    else:
        why = f"because {reason}"
    return (f"User: {principal.arn} is not authorized to perform: {verdict.need.action} "
            f"on resource: {verdict.need.resource} {why}")
