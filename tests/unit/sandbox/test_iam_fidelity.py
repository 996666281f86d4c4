"""AWS's documented IAM decisions, as a table any change to the evaluator must keep.

Each row is a set of policies (identity, resource, permissions boundary, key policy) and one
request, with the decision AWS's documentation gives and the page that gives it. The second
table reads API calls as boto3 sends them into the (action, resource, condition keys) AWS
authorises them as.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tapharness.sandbox.iam.catalog import needs
from tapharness.sandbox.iam.policy import (
    AuthzRequest,
    PolicySource,
    Principal,
    evaluate,
)

from .test_iam_catalog import wire

IAM = "https://docs.aws.amazon.com/IAM/latest/UserGuide/"
EVALUATION = IAM + "reference_policies_evaluation-logic.html"
CROSS_SERVICE = IAM + "reference_policies_evaluation-logic_policy-eval-denyallow.html"
BOUNDARIES = IAM + "access_policies_boundaries.html"
ELEMENTS = IAM + "reference_policies_elements.html"
NOT_PRINCIPAL = IAM + "reference_policies_elements_notprincipal.html"
OPERATORS = IAM + "reference_policies_elements_condition_operators.html"
MULTIVALUED = IAM + "reference_policies_condition-single-vs-multi-valued-context-keys.html"
VARIABLES = IAM + "reference_policies_variables.html"
GLOBAL_KEYS = IAM + "reference_policies_condition-keys.html"
KEY_POLICIES = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html"
DYNAMODB_FGAC = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html"

ACCOUNT = "123456789012"
OTHER = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/worker"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/fn"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/activity"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET_OBJECT = "arn:aws:s3:::media/users/alice/clip.mp4"

AS_ROLE = Principal(SESSION, ACCOUNT, role_arn=ROLE)
AS_USER = Principal(USER, ACCOUNT)
AS_SQS_SERVICE = Principal("service:sns.amazonaws.com", ACCOUNT, service="sns.amazonaws.com")


def allow(action: Any = "dynamodb:PutItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "dynamodb:PutItem", resource: Any = TABLE, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def grant(principal: Any, action: Any = "dynamodb:PutItem", resource: Any = TABLE, effect: str = "Allow",
          **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource, **extra}


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: value}}}


@dataclass(frozen=True)
class Case:
    name: str
    allowed: bool
    source: str
    identity: list[dict[str, Any]] = field(default_factory=list)
    resource: list[dict[str, Any]] | None = None
    boundary: list[dict[str, Any]] | None = None
    key_policy: bool = False
    principal: Principal = AS_ROLE
    action: str = "dynamodb:PutItem"
    target: str = TABLE
    context: dict[str, list[str]] = field(default_factory=dict)


def _source(name: str, statements: list[dict[str, Any]]) -> PolicySource:
    return PolicySource(name, json.dumps({"Version": "2012-10-17", "Statement": statements}))


CASES = [
    # --- the evaluation logic -----------------------------------------------------------------
    Case("nothing allows it: implicit deny", False, EVALUATION),
    Case("an identity allow on the resource allows", True, EVALUATION, identity=[allow()]),
    Case("an explicit deny beside an allow denies", False, EVALUATION, identity=[allow("dynamodb:*"), deny()]),
    Case("a resource policy's deny overrides an identity allow", False, EVALUATION, identity=[allow()],
         resource=[grant({"AWS": ROLE}, effect="Deny")]),
    Case("a resource policy naming the session allows without an identity policy", True, EVALUATION,
         resource=[grant({"AWS": SESSION})]),
    Case("a resource policy naming the role allows its sessions in the same account", True, EVALUATION,
         resource=[grant({"AWS": ROLE})]),
    Case("a resource policy naming only the account delegates: no identity allow, no access", False, EVALUATION,
         resource=[grant({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})]),
    Case("a resource policy naming the account plus an identity allow allows", True, EVALUATION,
         identity=[allow()], resource=[grant({"AWS": ACCOUNT})]),
    Case("a resource policy with Principal * allows", True, EVALUATION, resource=[grant("*")]),
    Case("an identity allow suffices in the same account whatever the resource policy names", True, EVALUATION,
         identity=[allow()], resource=[grant({"AWS": f"arn:aws:iam::{OTHER}:root"})]),
    Case("a user: its own identity allow allows", True, EVALUATION, principal=AS_USER, identity=[allow()]),
    Case("a resource policy naming the user allows", True, EVALUATION, principal=AS_USER,
         resource=[grant({"AWS": USER})]),
    # --- permissions boundaries ------------------------------------------------------------------
    Case("an identity allow outside the boundary is denied", False, BOUNDARIES, identity=[allow()],
         boundary=[allow("sqs:*", "*")]),
    Case("an identity allow inside the boundary is allowed", True, BOUNDARIES, identity=[allow()],
         boundary=[allow("dynamodb:*", "*")]),
    Case("the boundary alone grants nothing", False, BOUNDARIES, boundary=[allow("dynamodb:*", "*")]),
    Case("a resource policy naming the session is not limited by the boundary", True, BOUNDARIES,
         resource=[grant({"AWS": SESSION})], boundary=[allow("sqs:*", "*")]),
    Case("a resource policy naming the role is limited by the boundary", False, BOUNDARIES,
         resource=[grant({"AWS": ROLE})], boundary=[allow("sqs:*", "*")]),
    Case("an explicit deny in the boundary denies even the session's resource grant", False, BOUNDARIES,
         resource=[grant({"AWS": SESSION})], boundary=[allow("*", "*"), deny()]),
    # --- service principals ----------------------------------------------------------------------
    Case("a service named by the resource policy may act", True, EVALUATION, principal=AS_SQS_SERVICE,
         action="sqs:SendMessage", target=QUEUE,
         resource=[grant({"Service": "sns.amazonaws.com"}, "sqs:SendMessage", QUEUE)]),
    Case("a service no resource policy names may not act", False, EVALUATION, principal=AS_SQS_SERVICE,
         action="sqs:SendMessage", target=QUEUE, identity=[allow("*", "*")]),
    Case("a service's aws:SourceArn must match the resource policy's condition", False, GLOBAL_KEYS,
         principal=AS_SQS_SERVICE, action="sqs:SendMessage", target=QUEUE,
         context={"aws:sourcearn": [f"arn:aws:sns:us-east-1:{ACCOUNT}:other"]},
         resource=[grant({"Service": "sns.amazonaws.com"}, "sqs:SendMessage", QUEUE,
                         **when("ArnEquals", "aws:SourceArn", f"arn:aws:sns:us-east-1:{ACCOUNT}:orders"))]),
    # --- KMS key policies ------------------------------------------------------------------------
    Case("a key policy that delegates to the account plus an identity allow allows", True, KEY_POLICIES,
         key_policy=True, action="kms:Decrypt", target=KEY, identity=[allow("kms:Decrypt", KEY)],
         resource=[grant({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "kms:*", "*")]),
    Case("a key policy that delegates grants nothing without an identity allow", False, KEY_POLICIES,
         key_policy=True, action="kms:Decrypt", target=KEY,
         resource=[grant({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "kms:*", "*")]),
    Case("without the key policy's delegation an identity allow is not enough", False, KEY_POLICIES,
         key_policy=True, action="kms:Decrypt", target=KEY, identity=[allow("kms:Decrypt", "*")],
         resource=[grant({"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"}, "kms:*", "*")]),
    Case("a key policy naming the role allows on its own", True, KEY_POLICIES, key_policy=True,
         action="kms:Decrypt", target=KEY, resource=[grant({"AWS": ROLE}, "kms:Decrypt", "*")]),
    Case("a key policy's kms:ViaService condition admits calls through that service", True, KEY_POLICIES,
         key_policy=True, action="kms:Decrypt", target=KEY,
         context={"kms:viaservice": ["dynamodb.us-east-1.amazonaws.com"]},
         resource=[grant({"AWS": ROLE}, "kms:Decrypt", "*",
                         **when("StringEquals", "kms:ViaService", "dynamodb.us-east-1.amazonaws.com"))]),
    Case("a key policy's kms:ViaService condition refuses a direct call", False, KEY_POLICIES,
         key_policy=True, action="kms:Decrypt", target=KEY,
         resource=[grant({"AWS": ROLE}, "kms:Decrypt", "*",
                         **when("StringEquals", "kms:ViaService", "dynamodb.us-east-1.amazonaws.com"))]),
    # --- Action, Resource, NotAction, NotResource, NotPrincipal -----------------------------------
    Case("an action wildcard matches", True, ELEMENTS, identity=[allow("dynamodb:Put*")]),
    Case("actions match whatever their case", True, ELEMENTS, identity=[allow("DYNAMODB:putitem")]),
    Case("a ? in an action matches one character only", False, ELEMENTS, identity=[allow("dynamodb:PutItem?")]),
    Case("NotAction allows every action but those named", False, ELEMENTS,
         identity=[{"Effect": "Allow", "NotAction": "dynamodb:PutItem", "Resource": "*"}]),
    Case("NotAction allows an action it does not name", True, ELEMENTS, action="dynamodb:GetItem",
         identity=[{"Effect": "Allow", "NotAction": "dynamodb:PutItem", "Resource": "*"}]),
    Case("NotResource excludes the resources named", False, ELEMENTS,
         identity=[{"Effect": "Allow", "Action": "dynamodb:*", "NotResource": TABLE}]),
    Case("resources match case-sensitively", False, ELEMENTS, identity=[allow(resource=TABLE.upper())]),
    Case("a resource wildcard covers a table's indexes", True, ELEMENTS, action="dynamodb:Query",
         target=f"{TABLE}/index/by_user", identity=[allow("dynamodb:Query", f"{TABLE}/*")]),
    Case("Resource * matches everything", True, ELEMENTS, identity=[allow(resource="*")]),
    Case("a deny with NotAction denies every other action", False, ELEMENTS,
         identity=[allow("*", "*"), {"Effect": "Deny", "NotAction": "sqs:*", "Resource": "*"}]),
    Case("NotPrincipal naming the session, its role and its account spares it", True, NOT_PRINCIPAL,
         identity=[allow()], resource=[{"Effect": "Deny", "NotPrincipal": {"AWS": [
             SESSION, ROLE, f"arn:aws:iam::{ACCOUNT}:root"]}, "Action": "*", "Resource": "*"}]),
    Case("NotPrincipal naming only the role does not spare its session", False, NOT_PRINCIPAL,
         identity=[allow()], resource=[{"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "*",
                                         "Resource": "*"}]),
    # --- condition operators -----------------------------------------------------------------------
    Case("StringEquals on an equal value holds", True, OPERATORS, context={"aws:requestedregion": ["us-east-1"]},
         identity=[allow(**when("StringEquals", "aws:RequestedRegion", "us-east-1"))]),
    Case("StringEquals on another value fails", False, OPERATORS, context={"aws:requestedregion": ["eu-west-1"]},
         identity=[allow(**when("StringEquals", "aws:RequestedRegion", "us-east-1"))]),
    Case("a condition key absent from the request does not match", False, OPERATORS,
         identity=[allow(**when("StringEquals", "aws:SourceVpc", "vpc-1"))]),
    Case("a negated operator on an absent key holds", True, OPERATORS,
         identity=[allow(**when("StringNotEquals", "aws:SourceVpc", "vpc-1"))]),
    Case("StringLike takes wildcards", True, OPERATORS, context={"aws:principalarn": [ROLE]},
         identity=[allow(**when("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/work*"))]),
    Case("StringEqualsIgnoreCase ignores case", True, OPERATORS, context={"aws:requestedregion": ["us-east-1"]},
         identity=[allow(**when("StringEqualsIgnoreCase", "aws:RequestedRegion", "US-EAST-1"))]),
    Case("several values for one key: any may match", True, OPERATORS, context={"aws:requestedregion": ["us-east-1"]},
         identity=[allow(**when("StringEquals", "aws:RequestedRegion", ["eu-west-1", "us-east-1"]))]),
    Case("several keys under one operator must all match", False, OPERATORS,
         context={"aws:requestedregion": ["us-east-1"], "aws:principalaccount": [ACCOUNT]},
         identity=[allow(Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1",
                                                     "aws:PrincipalAccount": OTHER}})]),
    Case("several operators must all hold", False, OPERATORS,
         context={"aws:requestedregion": ["us-east-1"], "aws:securetransport": ["false"]},
         identity=[allow(Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"},
                                    "Bool": {"aws:SecureTransport": "true"}})]),
    Case("NumericLessThan compares numbers", True, OPERATORS, context={"s3:max-keys": ["10"]},
         identity=[allow(**when("NumericLessThan", "s3:max-keys", "100"))]),
    Case("DateGreaterThan compares dates", True, OPERATORS, context={"aws:currenttime": ["2026-12-07T12:00:00Z"]},
         identity=[allow(**when("DateGreaterThan", "aws:CurrentTime", "2026-01-01T00:00:00Z"))]),
    Case("a TLS-only deny does not fire on a TLS request", True, OPERATORS, context={"aws:securetransport": ["true"]},
         identity=[allow(), deny("*", "*", **when("Bool", "aws:SecureTransport", "false"))]),
    Case("...IfExists holds when the key is absent", True, OPERATORS,
         identity=[allow(**when("StringEqualsIfExists", "aws:SourceVpc", "vpc-1"))]),
    Case("Null true holds when the key is absent", True, OPERATORS,
         identity=[allow(**when("Null", "aws:SourceVpc", "true"))]),
    Case("Null true fails when the key is present", False, OPERATORS, context={"aws:sourcevpc": ["vpc-1"]},
         identity=[allow(**when("Null", "aws:SourceVpc", "true"))]),
    Case("ArnLike matches each ARN part with wildcards", True, OPERATORS, context={"aws:sourcearn": [QUEUE]},
         identity=[allow(**when("ArnLike", "aws:SourceArn", "arn:aws:sqs:*:*:job*"))]),
    Case("an operator IAM does not define is refused", False, OPERATORS,
         identity=[allow(**when("StringSortOf", "aws:RequestedRegion", "us-east-1"))]),
    # --- multivalued keys --------------------------------------------------------------------------
    Case("ForAllValues on an absent key holds", True, MULTIVALUED,
         identity=[allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team"]))]),
    Case("ForAnyValue on an absent key fails", False, MULTIVALUED,
         identity=[allow(**when("ForAnyValue:StringEquals", "aws:TagKeys", ["team"]))]),
    Case("ForAnyValue with a negated operator on an absent key fails", False, MULTIVALUED,
         identity=[allow(**when("ForAnyValue:StringNotEquals", "aws:TagKeys", ["team"]))]),
    Case("ForAllValues fails when one value is outside the set", False, MULTIVALUED,
         context={"aws:tagkeys": ["team", "cost"]},
         identity=[allow(**when("ForAllValues:StringEquals", "aws:TagKeys", ["team"]))]),
    Case("ForAnyValue holds when one value is in the set", True, MULTIVALUED,
         context={"aws:tagkeys": ["team", "cost"]},
         identity=[allow(**when("ForAnyValue:StringEquals", "aws:TagKeys", ["cost"]))]),
    # --- policy variables --------------------------------------------------------------------------
    Case("a policy variable in Resource takes the request's value", True, VARIABLES, principal=AS_USER,
         action="s3:GetObject", target=BUCKET_OBJECT, context={"aws:username": ["alice"]},
         identity=[allow("s3:GetObject", "arn:aws:s3:::media/users/${aws:username}/*")]),
    Case("a policy variable with no value matches nothing", False, VARIABLES, action="s3:GetObject",
         target=BUCKET_OBJECT, identity=[allow("s3:GetObject", "arn:aws:s3:::media/users/${aws:username}/*")]),
    # --- global keys the sandbox sets --------------------------------------------------------------
    Case("aws:PrincipalTag matches the role's tag", True, GLOBAL_KEYS, context={"aws:principaltag/team": ["video"]},
         identity=[allow(**when("StringEquals", "aws:PrincipalTag/team", "video"))]),
    Case("a deny on aws:ViaAWSService false fires on a direct call", False, GLOBAL_KEYS,
         context={"aws:viaawsservice": ["false"]},
         identity=[allow(), deny(**when("Bool", "aws:ViaAWSService", "false"))]),
    Case("aws:CalledVia admits a call made through DynamoDB", True, GLOBAL_KEYS, action="kms:Decrypt", target=KEY,
         context={"aws:calledvia": ["dynamodb.amazonaws.com"], "aws:viaawsservice": ["true"]},
         identity=[allow("kms:Decrypt", KEY,
                         **when("ForAnyValue:StringEquals", "aws:CalledVia", ["dynamodb.amazonaws.com"]))]),
    Case("aws:PrincipalOrgID is absent outside an organization", False, GLOBAL_KEYS,
         identity=[allow(**when("StringEquals", "aws:PrincipalOrgID", "o-abc123"))]),
    # --- DynamoDB fine-grained access control ------------------------------------------------------
    Case("dynamodb:LeadingKeys admits the user's own partition", True, DYNAMODB_FGAC,
         context={"dynamodb:leadingkeys": ["alice"]},
         identity=[allow(**when("ForAllValues:StringEquals", "dynamodb:LeadingKeys", ["alice"]))]),
    Case("dynamodb:LeadingKeys refuses another partition", False, DYNAMODB_FGAC,
         context={"dynamodb:leadingkeys": ["alice", "bob"]},
         identity=[allow(**when("ForAllValues:StringEquals", "dynamodb:LeadingKeys", ["alice"]))]),
    Case("dynamodb:Attributes refuses an attribute outside the list", False, DYNAMODB_FGAC,
         context={"dynamodb:attributes": ["user", "email"]},
         identity=[allow(**when("ForAllValues:StringEquals", "dynamodb:Attributes", ["user", "title"]))]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_evaluator_decides_as_aws_documents(case: Case) -> None:
    request = AuthzRequest(case.principal, case.action, case.target, {
        "aws:principalaccount": [case.principal.account], **case.context})
    decision = evaluate(request, [_source("identity policy", case.identity)] if case.identity else [],
                        _source("resource policy", case.resource) if case.resource is not None else None,
                        [_source("boundary", case.boundary)] if case.boundary is not None else None,
                        key_policy=case.key_policy)
    assert decision.allowed is case.allowed, f"{case.name} ({case.source}): {decision.reason}"


def test_the_table_holds_at_least_sixty_documented_decisions() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


# --- calls read as AWS authorises them ------------------------------------------------------------

SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference/"


@dataclass(frozen=True)
class CallCase:
    name: str
    service: str
    operation: str
    params: dict[str, Any]
    expected: list[tuple[str, str, dict[str, list[str]]]]  # (action, resource, condition keys it must carry)
    source: str


T = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/views"
CALL_CASES = [
    CallCase("GetItem carries its partition key, projected attributes and Select", "dynamodb", "get_item",
             {"TableName": "views", "Key": {"user": {"S": "u1"}, "ts": {"N": "1"}},
              "ProjectionExpression": "#t, meta.genre", "ExpressionAttributeNames": {"#t": "title"}},
             [("dynamodb:GetItem", T, {"dynamodb:leadingkeys": ["u1"], "dynamodb:attributes": ["title", "meta"],
                                       "dynamodb:select": ["SPECIFIC_ATTRIBUTES"]})], DYNAMODB_FGAC),
    CallCase("Query's leading key comes from its key condition", "dynamodb", "query",
             {"TableName": "views", "KeyConditionExpression": "#u = :u AND ts > :t",
              "ExpressionAttributeNames": {"#u": "user"},
              "ExpressionAttributeValues": {":u": {"S": "u2"}, ":t": {"N": "0"}}},
             [("dynamodb:Query", T, {"dynamodb:leadingkeys": ["u2"], "dynamodb:select": ["ALL_ATTRIBUTES"]})],
             DYNAMODB_FGAC),
    CallCase("PutItem names every attribute it writes and ReturnValues NONE", "dynamodb", "put_item",
             {"TableName": "views", "Item": {"user": {"S": "u3"}, "ts": {"N": "1"}, "title": {"S": "x"}}},
             [("dynamodb:PutItem", T, {"dynamodb:leadingkeys": ["u3"], "dynamodb:attributes": ["user", "ts", "title"],
                                       "dynamodb:returnvalues": ["NONE"]})], DYNAMODB_FGAC),
    CallCase("UpdateItem names the attributes its update expression writes", "dynamodb", "update_item",
             {"TableName": "views", "Key": {"user": {"S": "u4"}, "ts": {"N": "1"}},
              "UpdateExpression": "SET #c = if_not_exists(#c, :z) + :one, meta.seen = :one REMOVE draft",
              "ExpressionAttributeNames": {"#c": "count"},
              "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"},
             [("dynamodb:UpdateItem", T, {"dynamodb:leadingkeys": ["u4"],
                                          "dynamodb:attributes": ["count", "meta", "draft"],
                                          "dynamodb:returnvalues": ["ALL_NEW"]})], DYNAMODB_FGAC),
    CallCase("BatchWriteItem carries every partition key it writes or deletes", "dynamodb", "batch_write_item",
             {"RequestItems": {"views": [{"PutRequest": {"Item": {"user": {"S": "a"}, "ts": {"N": "1"}}}},
                                         {"DeleteRequest": {"Key": {"user": {"S": "b"}, "ts": {"N": "1"}}}}]}},
             [("dynamodb:BatchWriteItem", T, {"dynamodb:leadingkeys": ["a", "b"]})], DYNAMODB_FGAC),
    CallCase("each item of a transaction is authorised with its own keys", "dynamodb", "transact_write_items",
             {"TransactItems": [{"Put": {"TableName": "views", "Item": {"user": {"S": "c"}, "ts": {"N": "1"}}}},
                                {"Delete": {"TableName": "views", "Key": {"user": {"S": "d"}, "ts": {"N": "1"}}}}]},
             [("dynamodb:PutItem", T, {"dynamodb:leadingkeys": ["c"]}),
              ("dynamodb:DeleteItem", T, {"dynamodb:leadingkeys": ["d"]})], SAR + "list_amazondynamodb.html"),
    CallCase("Scan has no leading key", "dynamodb", "scan", {"TableName": "views"},
             [("dynamodb:Scan", T, {"dynamodb:select": ["ALL_ATTRIBUTES"]})], DYNAMODB_FGAC),
    CallCase("SendMessage is authorised on the queue its URL names", "sqs", "send_message",
             {"QueueUrl": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/jobs", "MessageBody": TABLE},
             [("sqs:SendMessage", QUEUE, {})], SAR + "list_amazonsqs.html"),
    CallCase("Invoke with a Qualifier is authorised on the qualified function", "lambda", "invoke",
             {"FunctionName": "scorer", "Qualifier": "live"},
             [("lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:scorer:live", {})],
             SAR + "list_awslambda.html"),
    CallCase("GetObject with a version is s3:GetObjectVersion", "s3", "get_object",
             {"Bucket": "media", "Key": "a.mp4", "VersionId": "v1"},
             [("s3:GetObjectVersion", "arn:aws:s3:::media/a.mp4", {})], SAR + "list_amazons3.html"),
]


@pytest.fixture(scope="module")
def views_table() -> Any:
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="views", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "user", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "user", "AttributeType": "S"},
                                  {"AttributeName": "ts", "AttributeType": "N"}])
        yield


@pytest.mark.parametrize("case", CALL_CASES, ids=lambda case: case.name)
def test_calls_are_authorised_as_aws_documents(case: CallCase, views_table: Any) -> None:
    found = needs(wire(case.service, case.operation, **case.params), ACCOUNT)
    assert [(n.action, n.resource) for n in found] == [(a, r) for a, r, _ in case.expected], case.source
    for need, (_, _, keys) in zip(found, case.expected, strict=True):
        assert {k: need.context.get(k) for k in keys} == keys, f"{case.name} ({case.source})"
