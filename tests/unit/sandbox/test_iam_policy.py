"""The IAM policy evaluator: AWS's same-account decision logic, statement by statement."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tapharness.sandbox.iam.policy import (
    AuthzRequest,
    PolicySource,
    Principal,
    evaluate,
    wildcard_match,
)

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/worker"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/fn"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/activity"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE_PRINCIPAL = Principal(SESSION, ACCOUNT, role_arn=ROLE)


def policy(*statements: dict) -> PolicySource:
    return PolicySource("test policy", json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: object) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str | list[str] = "*", **extra: object) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def request(action: str = "dynamodb:PutItem", resource: str = TABLE, context: dict | None = None,
            principal: Principal = ROLE_PRINCIPAL) -> AuthzRequest:
    return AuthzRequest(principal, action, resource, {k.lower(): v for k, v in (context or {}).items()})


def test_identity_allow_on_the_exact_resource_allows():
    assert evaluate(request(), [policy(allow("dynamodb:PutItem", TABLE))]).allowed


def test_no_matching_statement_is_an_implicit_deny():
    decision = evaluate(request("dynamodb:BatchGetItem"), [policy(allow("dynamodb:PutItem", TABLE))])
    assert not decision.allowed
    assert decision.reason == "no identity-based policy allows the action"


def test_allow_on_another_resource_does_not_allow():
    assert not evaluate(request(), [policy(allow("dynamodb:PutItem", f"{TABLE}-other"))]).allowed


def test_explicit_deny_wins_over_allow():
    decision = evaluate(request(), [policy(allow("dynamodb:*"), deny("dynamodb:PutItem", TABLE, Sid="NoWrites"))])
    assert not decision.allowed
    assert decision.reason == "explicit deny in test policy#NoWrites"


def test_action_wildcards_match_case_insensitively():
    assert evaluate(request("dynamodb:PutItem"), [policy(allow("DynamoDB:put*", TABLE))]).allowed


def test_resource_wildcard_matches_an_index_of_the_table():
    assert evaluate(request("dynamodb:Query", f"{TABLE}/index/by_user"),
                    [policy(allow("dynamodb:Query", f"{TABLE}/index/*"))]).allowed


def test_resource_matching_is_case_sensitive():
    assert not evaluate(request(), [policy(allow("dynamodb:PutItem", TABLE.upper()))]).allowed


def test_not_action_allows_everything_but_the_named_actions():
    statement = {"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": "*"}
    assert evaluate(request("dynamodb:PutItem"), [policy(statement)]).allowed
    assert not evaluate(request("dynamodb:DeleteItem"), [policy(statement)]).allowed


def test_not_resource_excludes_the_named_resources():
    statement = {"Effect": "Allow", "Action": "dynamodb:PutItem", "NotResource": TABLE}
    assert not evaluate(request(), [policy(statement)]).allowed
    assert evaluate(request(resource=f"{TABLE}-other"), [policy(statement)]).allowed


def test_resource_policy_naming_the_role_allows_without_an_identity_policy():
    queue_policy = policy({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sqs:SendMessage",
                           "Resource": QUEUE})
    assert evaluate(request("sqs:SendMessage", QUEUE), [], queue_policy).allowed


def test_resource_policy_naming_the_account_delegates_to_identity_policies():
    queue_policy = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                           "Action": "sqs:*", "Resource": QUEUE})
    assert not evaluate(request("sqs:SendMessage", QUEUE), [], queue_policy).allowed
    assert evaluate(request("sqs:SendMessage", QUEUE), [policy(allow("sqs:SendMessage", QUEUE))], queue_policy).allowed


def test_resource_policy_deny_wins_over_identity_allow():
    queue_policy = policy({"Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": QUEUE})
    assert not evaluate(request("sqs:SendMessage", QUEUE), [policy(allow("sqs:*"))], queue_policy).allowed


def test_service_principal_is_judged_by_the_resource_policy_alone():
    sns = Principal("service:sns.amazonaws.com", ACCOUNT, service="sns.amazonaws.com")
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:done"
    queue_policy = policy({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                           "Action": "sqs:SendMessage", "Resource": QUEUE,
                           "Condition": {"ArnEquals": {"aws:SourceArn": topic}}})
    assert evaluate(request("sqs:SendMessage", QUEUE, {"aws:SourceArn": [topic]}, sns), [], queue_policy).allowed
    assert not evaluate(request("sqs:SendMessage", QUEUE, {"aws:SourceArn": [f"{topic}-x"]}, sns),
                        [], queue_policy).allowed
    assert not evaluate(request("sqs:SendMessage", QUEUE, {"aws:SourceArn": [topic]}, sns), [], None).allowed


def test_key_policy_must_allow_even_when_the_identity_policy_does():
    key_policy = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"},
                         "Action": "kms:*", "Resource": "*"})
    identity = [policy(allow("kms:Decrypt", KEY))]
    assert not evaluate(request("kms:Decrypt", KEY), identity, key_policy, key_policy=True).allowed


def test_key_policy_delegating_to_the_account_lets_identity_policies_decide():
    key_policy = policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"})
    assert evaluate(request("kms:Decrypt", KEY), [policy(allow("kms:Decrypt", KEY))], key_policy,
                    key_policy=True).allowed
    assert not evaluate(request("kms:Decrypt", KEY), [], key_policy, key_policy=True).allowed


def test_permissions_boundary_caps_what_identity_policies_grant():
    boundary = [PolicySource("boundary", json.dumps({"Statement": [allow("dynamodb:GetItem")]}))]
    decision = evaluate(request(), [policy(allow("dynamodb:*"))], boundary=boundary)
    assert not decision.allowed
    assert decision.reason == "not allowed by the permissions boundary"


def test_string_like_condition_on_the_request_context():
    statement = allow("s3:ListBucket", "arn:aws:s3:::archive", Condition={"StringLike": {"s3:prefix": "raw/*"}})
    assert evaluate(request("s3:ListBucket", "arn:aws:s3:::archive", {"s3:prefix": ["raw/2026/"]}),
                    [policy(statement)]).allowed
    assert not evaluate(request("s3:ListBucket", "arn:aws:s3:::archive", {"s3:prefix": ["curated/"]}),
                        [policy(statement)]).allowed


def test_a_condition_key_missing_from_the_request_does_not_match():
    statement = allow("s3:ListBucket", "*", Condition={"StringEquals": {"s3:prefix": "raw/"}})
    assert not evaluate(request("s3:ListBucket", "arn:aws:s3:::archive"), [policy(statement)]).allowed


def test_if_exists_holds_when_the_key_is_missing():
    statement = allow("s3:ListBucket", "*", Condition={"StringEqualsIfExists": {"s3:prefix": "raw/"}})
    assert evaluate(request("s3:ListBucket", "arn:aws:s3:::archive"), [policy(statement)]).allowed


def test_negated_operator_holds_when_the_key_is_missing():
    statement = deny("s3:*", "*", Condition={"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}})
    assert not evaluate(request("s3:PutObject", "arn:aws:s3:::archive/k"),
                        [policy(allow("s3:*"), statement)]).allowed


def test_tls_only_deny_does_not_apply_to_sandbox_requests_over_tls():
    statement = deny("s3:*", "*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    decision = evaluate(request("s3:GetObject", "arn:aws:s3:::archive/k", {"aws:SecureTransport": ["true"]}),
                        [policy(allow("s3:GetObject"), statement)])
    assert decision.allowed


def test_numeric_condition_compares_numbers():
    statement = allow("dynamodb:Query", "*", Condition={"NumericLessThanEquals": {"dynamodb:Limit": "100"}})
    assert evaluate(request("dynamodb:Query", TABLE, {"dynamodb:Limit": ["20"]}), [policy(statement)]).allowed
    assert not evaluate(request("dynamodb:Query", TABLE, {"dynamodb:Limit": ["500"]}), [policy(statement)]).allowed


def test_null_condition_tests_whether_the_key_is_present():
    statement = allow("dynamodb:PutItem", "*", Condition={"Null": {"aws:SourceVpce": "false"}})
    assert not evaluate(request(), [policy(statement)]).allowed
    assert evaluate(request(context={"aws:SourceVpce": ["vpce-1"]}), [policy(statement)]).allowed


def test_arn_like_compares_each_part_with_wildcards():
    statement = allow("lambda:InvokeFunction", "*",
                      Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:api1/*/POST/*"}})
    good = {"aws:SourceArn": [f"arn:aws:execute-api:us-east-1:{ACCOUNT}:api1/dev/POST/watch"]}
    bad = {"aws:SourceArn": [f"arn:aws:execute-api:us-east-1:{ACCOUNT}:api1/dev/GET/watch"]}
    assert evaluate(request("lambda:InvokeFunction", "fn", good), [policy(statement)]).allowed
    assert not evaluate(request("lambda:InvokeFunction", "fn", bad), [policy(statement)]).allowed


def test_for_all_values_holds_only_when_every_value_is_listed():
    statement = allow("dynamodb:GetItem", "*",
                      Condition={"ForAllValues:StringEquals": {"dynamodb:Attributes": ["pk", "sk"]}})
    assert evaluate(request("dynamodb:GetItem", TABLE, {"dynamodb:Attributes": ["pk"]}), [policy(statement)]).allowed
    assert not evaluate(request("dynamodb:GetItem", TABLE, {"dynamodb:Attributes": ["pk", "secret"]}),
                        [policy(statement)]).allowed


def test_policy_variable_in_a_resource_is_substituted_from_the_context():
    statement = allow("s3:GetObject", "arn:aws:s3:::home/${aws:username}/*")
    assert evaluate(request("s3:GetObject", "arn:aws:s3:::home/ana/notes", {"aws:username": ["ana"]}),
                    [policy(statement)]).allowed
    assert not evaluate(request("s3:GetObject", "arn:aws:s3:::home/bob/notes", {"aws:username": ["ana"]}),
                        [policy(statement)]).allowed


def test_an_operator_iam_does_not_define_denies_with_the_reason():
    statement = allow("dynamodb:PutItem", "*", Condition={"StringEqualsMaybe": {"aws:SourceVpce": "vpce-1"}})
    decision = evaluate(request(context={"aws:SourceVpce": ["vpce-1"]}), [policy(statement)])
    assert not decision.allowed
    assert "StringEqualsMaybe" in decision.reason


def test_wildcard_question_mark_is_one_character_and_brackets_are_literal():
    assert wildcard_match("table/a?c", "table/abc")
    assert not wildcard_match("table/a?c", "table/abbc")
    assert wildcard_match("table/[x]", "table/[x]")
    assert not wildcard_match("table/[x]", "table/x")


ACTIONS = st.sampled_from(["dynamodb:PutItem", "dynamodb:GetItem", "sqs:SendMessage", "s3:GetObject", "kms:Decrypt"])
PATTERNS = st.sampled_from(["*", "dynamodb:*", "dynamodb:PutItem", "sqs:Send*", "s3:Get?bject", "kms:*"])


@given(action=ACTIONS, allowed=st.lists(PATTERNS, min_size=1, max_size=3), denied=PATTERNS)
def test_a_matching_explicit_deny_always_denies(action: str, allowed: list[str], denied: str):
    decision = evaluate(request(action), [policy(allow(allowed)), policy(deny(denied))])
    if wildcard_match(denied, action, ignore_case=True):
        assert not decision.allowed
    else:
        assert decision.allowed == any(wildcard_match(p, action, ignore_case=True) for p in allowed)


BOUNDARY = [PolicySource("boundary", json.dumps({"Statement": [allow("dynamodb:GetItem")]}))]


def test_a_resource_policy_naming_the_role_is_capped_by_the_permissions_boundary():
    # "Resource-based policies that grant permissions to an IAM role ARN are limited by an implicit
    # deny in a permissions boundary or session policy" (IAM, policy evaluation logic).
    queue_policy = policy({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sqs:SendMessage", "Resource": QUEUE})
    decision = evaluate(request("sqs:SendMessage", QUEUE), [], queue_policy, boundary=BOUNDARY)
    assert not decision.allowed and decision.reason == "not allowed by the permissions boundary"


def test_a_resource_policy_naming_the_session_is_not_capped_by_the_permissions_boundary():
    queue_policy = policy({"Effect": "Allow", "Principal": {"AWS": SESSION}, "Action": "sqs:SendMessage",
                           "Resource": QUEUE})
    assert evaluate(request("sqs:SendMessage", QUEUE), [], queue_policy, boundary=BOUNDARY).allowed


def _deny_all_but(*names: str) -> PolicySource:
    return policy({"Effect": "Deny", "NotPrincipal": {"AWS": list(names)}, "Action": "sqs:*", "Resource": QUEUE})


def test_not_principal_naming_only_the_role_does_not_spare_its_sessions():
    everyone = policy(allow("sqs:SendMessage", QUEUE))
    assert not evaluate(request("sqs:SendMessage", QUEUE), [everyone], _deny_all_but(ROLE)).allowed


def test_not_principal_naming_the_session_its_role_and_account_spares_it():
    everyone = policy(allow("sqs:SendMessage", QUEUE))
    spared = _deny_all_but(SESSION, ROLE, f"arn:aws:iam::{ACCOUNT}:root")
    assert evaluate(request("sqs:SendMessage", QUEUE), [everyone], spared).allowed


def test_for_any_value_with_a_negated_operator_on_a_missing_key_does_not_match():
    # "ForAnyValue ... For no matching key or a null dataset, the condition returns false."
    statement = allow("dynamodb:PutItem", TABLE,
                      Condition={"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["secret"]}})
    assert not evaluate(request(), [policy(statement)]).allowed
