"""The HTTP API (v2) front door: route selection, the payload 2.0 event and HTTP APIs' answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tapharness.sandbox.apigw import local_invoke_url
from tapharness.sandbox.httpapi import select_route, translate_v2

from .helpers import unique, zip_sources

ECHO = """
import json
def lambda_handler(event, context):
    query = event.get("queryStringParameters") or {}
    if query.get("fail"):
        raise RuntimeError("asked to fail")
    if query.get("bare"):
        return {"echo": event["routeKey"]}
    return {"statusCode": 201, "headers": {"X-Route": event["routeKey"]}, "body": json.dumps(event)}
"""


@dataclass
class HttpApi:
    api_id: str
    base: str


def echo_api(aws: Callable[[str], Any], role_arn: str, sandbox: Any, routes: dict[str, str]) -> HttpApi:
    """An HTTP API whose routes ({route key: authorization type}) all reach the ECHO function, on $default."""
    v2 = aws("apigatewayv2")
    function = aws("lambda").create_function(
        FunctionName=unique("echo2"), Runtime="python3.12", Role=role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": zip_sources({"handler.py": ECHO})})["FunctionArn"]
    api_id = v2.create_api(Name=unique("http"), ProtocolType="HTTP")["ApiId"]
    aws("lambda").add_permission(FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*")
    integration = v2.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", PayloadFormatVersion="2.0", IntegrationMethod="POST",
        IntegrationUri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function}/invocations")
    for key, authorization in routes.items():
        v2.create_route(ApiId=api_id, RouteKey=key, AuthorizationType=authorization,
                        Target=f"integrations/{integration['IntegrationId']}")
    v2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    url = local_invoke_url(f"https://{api_id}.execute-api.us-east-1.amazonaws.com/", sandbox.gateway_url)
    return HttpApi(api_id, url.rstrip("/"))


@pytest.fixture(scope="module")
def http_api(aws: Callable[[str], Any], role_arn: str, sandbox: Any) -> HttpApi:
    return echo_api(aws, role_arn, sandbox, {"POST /book": "NONE", "GET /availability/{property_id}": "NONE"})


def call(url: str, method: str = "POST", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def test_a_routed_request_reaches_the_function_as_a_payload_2_event(http_api: HttpApi) -> None:
    status, headers, event = call(f"{http_api.base}/book?a=1&a=2", body=b'{"x": 1}',
                                  headers={"Content-Type": "application/json", "Cookie": "s=1; t=2"})
    assert status == 201 and headers["X-Route"] == "POST /book"
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "POST /book", "/book")
    assert event["queryStringParameters"] == {"a": "1,2"} and event["cookies"] == ["s=1", "t=2"]
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"
    assert event["requestContext"]["http"]["method"] == "POST" and event["requestContext"]["stage"] == "$default"


def test_path_parameters_come_from_the_route_template(http_api: HttpApi) -> None:
    status, _, event = call(f"{http_api.base}/availability/h-42", method="GET")
    assert status == 201 and event["pathParameters"] == {"property_id": "h-42"}


def test_a_binary_body_arrives_base64_encoded(http_api: HttpApi) -> None:
    _, _, event = call(f"{http_api.base}/book", body=b"\xff\x00", headers={"Content-Type": "application/octet-stream"})
    assert event["isBase64Encoded"] is True and event["body"] == "/wA="


def test_an_unrouted_request_is_404_not_found(http_api: HttpApi) -> None:
    assert call(f"{http_api.base}/nowhere", method="GET")[::2] == (404, {"message": "Not Found"})
    assert call(f"{http_api.base}/book", method="GET")[0] == 404


def test_a_function_error_is_500_internal_server_error(http_api: HttpApi) -> None:
    assert call(f"{http_api.base}/book?fail=1", body=b"{}")[::2] == (500, {"message": "Internal Server Error"})


def test_a_response_without_status_code_is_sent_as_a_200_json_body(http_api: HttpApi) -> None:
    assert call(f"{http_api.base}/book?bare=1", body=b"{}")[::2] == (200, {"echo": "POST /book"})


def test_the_invoke_url_of_the_default_stage_maps_to_the_local_gateway() -> None:
    assert local_invoke_url("https://q1w2.execute-api.us-west-2.amazonaws.com/", "http://127.0.0.1:9") == \
        "http://127.0.0.1:9/apis/q1w2/"
    assert local_invoke_url("https://q1w2.execute-api.us-west-2.amazonaws.com/book", "http://127.0.0.1:9") == \
        "http://127.0.0.1:9/apis/q1w2/book"


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/items/7", ("GET /items/{id}", {"id": "7"})),
    ("GET", "/items/special", ("GET /items/special", {})),
    ("DELETE", "/items/7", ("ANY /items/{id}", {"id": "7"})),
    ("GET", "/files/a/b", ("GET /files/{proxy+}", {"proxy": "a/b"})),
    ("PUT", "/other", ("$default", {})),
])
def test_the_most_specific_route_wins(method: str, path: str, expected: tuple[str, dict[str, str]]) -> None:
    keys = ["GET /items/{id}", "GET /items/special", "ANY /items/{id}", "GET /files/{proxy+}", "$default"]
    assert select_route(keys, method, path) == expected


@pytest.mark.parametrize("payload", [{"statusCode": "200"}, {"statusCode": 200, "body": {"not": "a string"}},
                                     {"statusCode": 42}])
def test_a_malformed_proxy_response_is_500(payload: Any) -> None:
    assert translate_v2(False, payload).status == 500


@dataclass
class IamApi:
    base: str
    booker: dict[str, str]  # credentials of a role allowed execute-api:Invoke on POST /book only
    stranger: dict[str, str]  # credentials of a role allowed nothing


@pytest.fixture(scope="module")
def iam_api(aws: Callable[[str], Any], role_arn: str, sandbox: Any) -> IamApi:
    api = echo_api(aws, role_arn, sandbox, {"POST /book": "AWS_IAM", "DELETE /book": "AWS_IAM", "GET /open": "NONE"})
    api_id = api.api_id
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]})
    credentials = {}
    for name, statements in [("booker", [{"Effect": "Allow", "Action": "execute-api:Invoke",
                                          "Resource": f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/$default/POST/book"}]),
                             ("stranger", [])]:
        arn = aws("iam").create_role(RoleName=unique(name), AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        if statements:
            aws("iam").put_role_policy(RoleName=arn.split("/")[-1], PolicyName="invoke",
                                       PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        credentials[name] = aws("sts").assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]
    return IamApi(api.base, credentials["booker"], credentials["stranger"])


def signed(url: str, method: str, credentials: dict[str, str],
           service: str = "execute-api") -> tuple[int, dict[str, str], Any]:
    """A SigV4-signed request (for execute-api unless said), as a booking channel's SDK sends it."""
    request = AWSRequest(method=method, url=url, data=b"{}", headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]),
              service, "us-east-1").add_auth(request)
    return call(url, method, b"{}", dict(request.headers.items()))


def test_an_iam_route_serves_a_caller_allowed_to_invoke_it(iam_api: IamApi) -> None:
    status, headers, _ = signed(f"{iam_api.base}/book", "POST", iam_api.booker)
    assert status == 201 and headers["X-Route"] == "POST /book"


FORBIDDEN = (403, {"message": "Forbidden"})


def test_an_unsigned_request_to_an_iam_route_is_403_forbidden(iam_api: IamApi) -> None:
    status, _, body = call(f"{iam_api.base}/book", body=b"{}", headers={"Content-Type": "application/json"})
    assert (status, body) == FORBIDDEN


def test_a_caller_no_policy_allows_is_403_and_the_function_is_not_invoked(iam_api: IamApi) -> None:
    status, headers, body = signed(f"{iam_api.base}/book", "POST", iam_api.stranger)
    assert (status, body) == FORBIDDEN and "X-Route" not in headers


def test_an_allowed_caller_is_refused_on_a_route_its_policy_does_not_name(iam_api: IamApi) -> None:
    status, _, body = signed(f"{iam_api.base}/book", "DELETE", iam_api.booker)
    assert (status, body) == FORBIDDEN


def test_unknown_keys_are_403_forbidden(iam_api: IamApi) -> None:
    forged = {**iam_api.booker, "AccessKeyId": "ASIAUNKNOWNUNKNOWN00"}
    assert signed(f"{iam_api.base}/book", "POST", forged)[::2] == FORBIDDEN


def test_a_request_signed_for_another_service_is_403_forbidden(iam_api: IamApi) -> None:
    assert signed(f"{iam_api.base}/book", "POST", iam_api.booker, service="lambda")[::2] == FORBIDDEN


def test_a_route_without_authorization_still_serves_anyone(iam_api: IamApi) -> None:
    status, headers, _ = call(f"{iam_api.base}/open", "GET")
    assert status == 201 and headers["X-Route"] == "GET /open"
