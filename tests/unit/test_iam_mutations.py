"""The IAM mutation benchmark's policy edits: exactly the statement, action or service named goes."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tapharness import toolchain

_spec = importlib.util.spec_from_file_location("iam_mutations", toolchain.ROOT / "benchmarks" / "iam_mutations.py")
assert _spec is not None and _spec.loader is not None
mutations = sys.modules["iam_mutations"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutations)

POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "UseDataKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "k"},
    {"Sid": "Services", "Effect": "Allow", "Principal": {"Service": ["sns.amazonaws.com", "events.amazonaws.com"]},
     "Action": "kms:GenerateDataKey", "Resource": "*"},
    {"Sid": "Other", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "q"}]}


def test_without_a_statement_keeps_the_others_and_the_original():
    edited = mutations.without(POLICY, "UseDataKey")
    assert [s["Sid"] for s in edited["Statement"]] == ["Services", "Other"]
    assert [s["Sid"] for s in POLICY["Statement"]] == ["UseDataKey", "Services", "Other"]


def test_without_an_action_keeps_the_statements_other_actions():
    edited = mutations.without(POLICY, "UseDataKey", action="kms:GenerateDataKey")
    assert edited["Statement"][0]["Action"] == ["kms:Decrypt"]


def test_without_a_service_principal_keeps_the_other_services():
    edited = mutations.without(POLICY, "Services", service="sns.amazonaws.com")
    assert edited["Statement"][1]["Principal"]["Service"] == ["events.amazonaws.com"]


def test_a_statement_that_is_not_there_is_an_error():
    with pytest.raises(LookupError):
        mutations.without(POLICY, "Missing")
