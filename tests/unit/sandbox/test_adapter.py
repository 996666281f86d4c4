"""A stack's sandbox.yaml: partner stand-ins wired into its variables, secret values, sign-off variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapharness import stacks
from tapharness.sandbox.adapter import Adapter, AdapterError


def _stack(tmp_path: Path, text: str) -> stacks.Stack:
    (tmp_path / "sandbox.yaml").write_text(text)
    return stacks.Stack("scratch", tmp_path)


def test_partner_urls_replace_their_placeholders_in_the_variables(tmp_path: Path) -> None:
    adapter = Adapter.load(_stack(tmp_path, 'partner_apis: [pms]\nvars: {endpoints: \'{ a = "{partner:pms}/v1" }\'}\n'))
    assert adapter.tofu_vars({"pms": "http://127.0.0.1:9"}) == {"endpoints": '{ a = "http://127.0.0.1:9/v1" }'}


def test_a_placeholder_for_an_undeclared_partner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="nope"):
        Adapter.load(_stack(tmp_path, "vars: {x: '{partner:nope}'}\n"))


def test_secret_values_go_to_the_arns_the_outputs_name(tmp_path: Path) -> None:
    adapter = Adapter.load(_stack(tmp_path, "secrets:\n  - {output: secret_arns, key: k, value: {api_key: s}}\n"))
    put: list[tuple[str, str]] = []
    assert adapter.put_secrets({"secret_arns": {"value": {"k": "arn:1"}}}, lambda arn, value: put.append((arn, value))) == 1
    assert put == [("arn:1", json.dumps({"api_key": "s"}))]
    with pytest.raises(AdapterError, match="secret_arns"):
        adapter.put_secrets({}, lambda arn, value: None)


def test_a_stack_without_sandbox_yaml_needs_nothing_extra(tmp_path: Path) -> None:
    assert Adapter.load(stacks.Stack("bare", tmp_path)) == Adapter()


def test_a_model_endpoint_is_named_by_the_arn_its_output_holds(tmp_path: Path) -> None:
    adapter = Adapter.load(_stack(tmp_path, "model_endpoints:\n  - endpoint_output: endpoint_arn\n"
                                            "    training_sql: SELECT u, i, w FROM t\n    retrain_after_s: 5\n"))
    named = adapter.model_endpoints_by_name({"endpoint_arn": {"value": "arn:aws:sagemaker:r:1:endpoint/recs"}})
    assert list(named) == ["recs"]
    assert (named["recs"].training_sql, named["recs"].retrain_after_s) == ("SELECT u, i, w FROM t", 5.0)
    assert named["recs"].request == {"history": "recent_content_ids", "candidates": "candidates"}
    with pytest.raises(AdapterError, match="endpoint_arn"):
        adapter.model_endpoints_by_name({})


def test_the_video_stacks_endpoint_trains_on_who_finished_what() -> None:
    [spec] = Adapter.load(stacks.resolve("video_streaming")).model_endpoints
    assert (spec.endpoint_output, "viewer_titles" in spec.training_sql) == ("sagemaker_endpoint_arn", True)
