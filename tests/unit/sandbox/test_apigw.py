"""The API front door: routing, request validation, proxy events and AWS's error answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tapharness.sandbox.apigw import FrontDoor, local_invoke_url
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.web import HttpRequest, match_resource

from .conftest import REGION
from .helpers import unique, zip_sources

ECHO = """
import json
def lambda_handler(event, context):
    if (event.get("queryStringParameters") or {}).get("fail"):
        raise RuntimeError("asked to fail")
    return {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}
"""
SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
    "properties": {"user_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                   "position_seconds": {"type": "number", "minimum": 0}},
    "required": ["user_id", "position_seconds"], "additionalProperties": False,
}


@dataclass
class Api:
    api_id: str
    base: str


@pytest.fixture(scope="module")
def api(aws: Callable[[str], Any], role_arn: str, sandbox: Any) -> Api:
    gateway = aws("apigateway")
    function = aws("lambda").create_function(
        FunctionName=unique("echo"), Runtime="python3.12", Role=role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": zip_sources({"handler.py": ECHO})})["FunctionArn"]
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function}/invocations"
    api_id = gateway.create_rest_api(name=unique("api"))["id"]
    aws("lambda").add_permission(FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*/*")
    root = next(r["id"] for r in gateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    gateway.create_model(restApiId=api_id, name="ViewingEvent", contentType="application/json",
                         schema=json.dumps(SCHEMA))
    validator = gateway.create_request_validator(restApiId=api_id, name="body", validateRequestBody=True,
                                                 validateRequestParameters=True)["id"]
    watch = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="watch")["id"]
    gateway.put_method(restApiId=api_id, resourceId=watch, httpMethod="POST", authorizationType="NONE",
                       requestValidatorId=validator, requestModels={"application/json": "ViewingEvent"})
    items = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="items")["id"]
    item = gateway.create_resource(restApiId=api_id, parentId=items, pathPart="{item_id}")["id"]
    gateway.put_method(restApiId=api_id, resourceId=item, httpMethod="GET", authorizationType="NONE",
                       requestValidatorId=validator, requestParameters={"method.request.header.X-Client": True})
    for resource, method in ((watch, "POST"), (item, "GET")):
        gateway.put_integration(restApiId=api_id, resourceId=resource, httpMethod=method, type="AWS_PROXY",
                                integrationHttpMethod="POST", uri=uri)
    gateway.create_deployment(restApiId=api_id, stageName="dev")
    return Api(api_id, f"{sandbox.gateway_url}/restapis/{api_id}/dev")


def call(url: str, method: str = "POST", body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


VALID = {"user_id": "u-1", "position_seconds": 12}


def test_valid_request_reaches_the_function_and_its_status_comes_back(api):
    status, _ = call(f"{api.base}/watch", body=VALID)
    assert status == 202


def test_proxy_event_has_the_v1_shape(api):
    _, event = call(f"{api.base}/watch?source=test", body=VALID)
    assert event["resource"] == "/watch"
    assert event["path"] == "/watch"
    assert event["httpMethod"] == "POST"
    assert json.loads(event["body"]) == VALID
    assert event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"source": "test"}
    assert event["requestContext"]["stage"] == "dev"
    assert event["requestContext"]["apiId"] == api.api_id
    assert event["requestContext"]["path"] == "/dev/watch"


def test_body_failing_the_model_is_rejected_with_400_invalid_request_body(api):
    status, body = call(f"{api.base}/watch", body={**VALID, "extra": True})
    assert (status, body) == (400, {"message": "Invalid request body"})


def test_body_that_is_not_json_is_rejected_with_400(api):
    status, _ = call(f"{api.base}/watch", raw=b"{not json")
    assert status == 400


HOSTILE_JSON = {
    "nested 3000 arrays deep": b"[" * 3000 + b"]" * 3000,
    "nested 1200 objects deep": b'{"a":' * 1200 + b"1" + b"}" * 1200,
    "an integer of 5000 digits": b'{"user_id": "u-1", "position_seconds": ' + b"9" * 5000 + b"}",
    "NaN": b'{"user_id": "u-1", "position_seconds": NaN}',
    "Infinity": b'{"user_id": "u-1", "position_seconds": Infinity}',
    "invalid UTF-8": b'{"user_id": "u-\xff", "position_seconds": 1}',
}


@pytest.mark.parametrize("raw", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_under_a_model_is_400_invalid_request_body(api, raw):
    status, body = call(f"{api.base}/watch", raw=raw)
    assert (status, body) == (400, {"message": "Invalid request body"})


def test_a_front_door_failure_is_500_not_a_dropped_connection(monkeypatch):
    def broken(*_args: Any) -> None:
        raise RuntimeError("front door bug")

    door = FrontDoor(AwsClients("http://127.0.0.1:9", REGION))
    monkeypatch.setattr(door, "_stage", lambda route: {"stageName": route.stage})
    monkeypatch.setattr(door, "_serve", broken)
    response = door.handle(HttpRequest("POST", "/restapis/abc/dev/watch", body=json.dumps(VALID).encode()))
    assert (response.status, json.loads(response.body)) == (500, {"message": "Internal server error"})


def test_unknown_route_is_403_missing_authentication_token(api):
    status, body = call(f"{api.base}/nowhere", body=VALID)
    assert (status, body) == (403, {"message": "Missing Authentication Token"})


def test_method_not_defined_on_a_resource_is_403(api):
    status, _ = call(f"{api.base}/watch", method="GET")
    assert status == 403


def test_unknown_stage_is_403(api):
    status, _ = call(f"{api.base.rsplit('/', 1)[0]}/prod/watch", body=VALID)
    assert status == 403


def test_path_parameters_come_from_the_resource_template(api):
    _, event = call(f"{api.base}/items/abc", method="GET", headers={"X-Client": "t"})
    assert event["pathParameters"] == {"item_id": "abc"}


def test_missing_required_header_is_rejected_with_400(api):
    status, body = call(f"{api.base}/items/abc", method="GET")
    assert status == 400
    assert "X-Client" in body["message"]


def test_function_error_is_502_internal_server_error(api):
    status, body = call(f"{api.base}/items/abc?fail=1", method="GET", headers={"X-Client": "t"})
    assert (status, body) == (502, {"message": "Internal server error"})


def test_body_over_ten_megabytes_is_413(api):
    status, _ = call(f"{api.base}/watch", raw=b"x" * (10 * 1024 * 1024 + 1))
    assert status == 413


def test_execute_api_host_header_routes_by_api_id(api, sandbox):
    host = f"{api.api_id}.execute-api.us-east-1.amazonaws.com"
    status, _ = call(f"{sandbox.gateway_url}/dev/watch", body=VALID, headers={"Host": host})
    assert status == 202


def test_custom_bad_request_body_gateway_response_is_rendered(api, aws):
    template = '{"error": "invalid", "detail": "$context.error.validationErrorString"}'
    aws("apigateway").put_gateway_response(restApiId=api.api_id, responseType="BAD_REQUEST_BODY",
                                           statusCode="400",
                                           responseTemplates={"application/json": template})
    try:
        status, body = call(f"{api.base}/watch", body={"user_id": "u-1"})
    finally:
        aws("apigateway").delete_gateway_response(restApiId=api.api_id, responseType="BAD_REQUEST_BODY")
    assert status == 400
    assert body["error"] == "invalid"
    assert "position_seconds" in body["detail"]


def test_a_new_method_is_served_only_after_the_next_deployment(api, aws):
    gateway = aws("apigateway")
    root = next(r["id"] for r in gateway.get_resources(restApiId=api.api_id)["items"] if r["path"] == "/")
    uri = gateway.get_integration(restApiId=api.api_id, resourceId=next(
        r["id"] for r in gateway.get_resources(restApiId=api.api_id)["items"] if r["path"] == "/watch"),
        httpMethod="POST")["uri"]
    assert call(f"{api.base}/watch", body=VALID)[0] == 202  # the deployment is now read
    later = gateway.create_resource(restApiId=api.api_id, parentId=root, pathPart="later")["id"]
    gateway.put_method(restApiId=api.api_id, resourceId=later, httpMethod="POST", authorizationType="NONE")
    gateway.put_integration(restApiId=api.api_id, resourceId=later, httpMethod="POST", type="AWS_PROXY",
                            integrationHttpMethod="POST", uri=uri)
    assert call(f"{api.base}/later", body={})[0] == 403
    gateway.create_deployment(restApiId=api.api_id, stageName="dev")
    assert call(f"{api.base}/later", body={})[0] == 202


def test_stack_invoke_url_maps_to_the_local_gateway():
    url = local_invoke_url("https://abc123.execute-api.us-east-1.amazonaws.com/dev", "http://127.0.0.1:9000")
    assert url == "http://127.0.0.1:9000/apis/abc123/dev"


def test_greedy_proxy_resource_captures_the_rest_of_the_path():
    assert match_resource("/files/{proxy+}", "/files/a/b/c") == {"proxy": "a/b/c"}


def test_literal_resource_does_not_match_a_longer_path():
    assert match_resource("/watch", "/watch/extra") is None


def test_access_log_line_is_written_to_the_stage_log_group(api, aws):
    group = f"/sandbox/access/{unique('api')}"
    aws("logs").create_log_group(logGroupName=group)
    aws("apigateway").update_stage(restApiId=api.api_id, stageName="dev", patchOperations=[
        {"op": "replace", "path": "/accessLogSettings/destinationArn",
         "value": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}"},
        {"op": "replace", "path": "/accessLogSettings/format",
         "value": '{"requestId":"$context.requestId","status":"$context.status"}'}])
    try:
        call(f"{api.base}/watch", body=VALID)
    finally:
        aws("apigateway").update_stage(restApiId=api.api_id, stageName="dev", patchOperations=[
            {"op": "remove", "path": "/accessLogSettings"}])
    lines = [json.loads(e["message"]) for e in aws("logs").filter_log_events(logGroupName=group)["events"]]
    assert [line["status"] for line in lines] == ["202"]


def test_requests_count_in_the_apis_metrics_by_name_and_stage(api, aws, sandbox):
    """API Gateway's REST metrics: Count, 4XXError, 5XXError, Latency by ApiName and Stage."""
    from .test_metrics import statistic

    dims = {"ApiName": aws("apigateway").get_rest_api(restApiId=api.api_id)["name"], "Stage": "dev"}

    def counts() -> tuple[float, float]:
        return (statistic(aws, sandbox, "AWS/ApiGateway", "Count", dims, "Sum") or 0,
                statistic(aws, sandbox, "AWS/ApiGateway", "4XXError", dims, "Sum") or 0)

    before = counts()
    call(f"{api.base}/watch", body=VALID)
    call(f"{api.base}/watch", body={"not": "valid"})
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
