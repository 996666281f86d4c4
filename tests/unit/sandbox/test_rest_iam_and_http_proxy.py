"""REST API methods with IAM authorization, and HTTP_PROXY integrations to a partner's stand-in."""

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

from .helpers import role_credentials, unique

ACCOUNT = "123456789012"


@dataclass
class ProxyApi:
    api_id: str
    base: str
    partner: str  # the stand-in's name
    caller: dict[str, str]  # credentials allowed execute-api:Invoke on POST /pos/*
    stranger: dict[str, str]  # credentials allowed nothing


@pytest.fixture(scope="module")
def proxy_api(aws: Callable[[str], Any], sandbox: Any) -> ProxyApi:
    """``POST /pos/{restaurant}/orders`` (IAM) proxied to ``https://<partner>/restaurants/{restaurant}/orders``,
    and ``POST /open/{proxy+}`` (no authorization) proxied to the same stand-in's ``/{proxy}``."""
    partner = unique("pos").lower().replace("_", "-")
    partner_url = sandbox.control("POST", f"partners/{partner}", {})["url"]
    gateway = aws("apigateway")
    api_id = gateway.create_rest_api(name=unique("pos"))["id"]
    root = next(r["id"] for r in gateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    pos = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="pos")["id"]
    restaurant = gateway.create_resource(restApiId=api_id, parentId=pos, pathPart="{restaurant}")["id"]
    orders = gateway.create_resource(restApiId=api_id, parentId=restaurant, pathPart="orders")["id"]
    gateway.put_method(restApiId=api_id, resourceId=orders, httpMethod="POST", authorizationType="AWS_IAM",
                       requestParameters={"method.request.path.restaurant": True})
    gateway.put_integration(restApiId=api_id, resourceId=orders, httpMethod="POST", type="HTTP_PROXY",
                            integrationHttpMethod="POST", uri=f"{partner_url}/restaurants/{{restaurant}}/orders",
                            requestParameters={"integration.request.path.restaurant": "method.request.path.restaurant",
                                               "integration.request.header.X-Partner-Key": "'sandbox-key'"})
    opened = gateway.create_resource(restApiId=api_id, parentId=root, pathPart="open")["id"]
    greedy = gateway.create_resource(restApiId=api_id, parentId=opened, pathPart="{proxy+}")["id"]
    gateway.put_method(restApiId=api_id, resourceId=greedy, httpMethod="ANY", authorizationType="NONE",
                       requestParameters={"method.request.path.proxy": True})
    gateway.put_integration(restApiId=api_id, resourceId=greedy, httpMethod="ANY", type="HTTP_PROXY",
                            integrationHttpMethod="ANY", uri=f"{partner_url}/{{proxy}}",
                            requestParameters={"integration.request.path.proxy": "method.request.path.proxy"})
    gateway.create_deployment(restApiId=api_id, stageName="dev")
    caller = role_credentials(aws, [{"Effect": "Allow", "Action": "execute-api:Invoke",
                                "Resource": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{api_id}/dev/POST/pos/*"}])
    return ProxyApi(api_id, f"{sandbox.gateway_url}/restapis/{api_id}/dev", partner, caller, role_credentials(aws, []))


def send(url: str, body: bytes, signer: dict[str, str] | None = None, service: str = "execute-api",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", **(headers or {})}
    if signer is not None:
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(Credentials(signer["AccessKeyId"], signer["SecretAccessKey"], signer["SessionToken"]),
                  service, "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    http = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(http, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def received(sandbox: Any, partner: str) -> list[dict[str, Any]]:
    return sandbox.control("GET", f"partners/{partner}")["received"]


def test_an_allowed_caller_reaches_the_backend_with_the_path_and_headers_mapped(
        sandbox: Any, proxy_api: ProxyApi) -> None:
    order = {"order_id": "o-1", "items": ["pad thai"]}
    status, _, answer = send(f"{proxy_api.base}/pos/r-42/orders?channel=app", json.dumps(order).encode(),
                             proxy_api.caller)
    assert (status, answer) == (200, {"status": "ok"})
    (seen,) = [r for r in received(sandbox, proxy_api.partner) if r["body"] == order]
    assert seen["path"] == "/restaurants/r-42/orders?channel=app"
    assert seen["headers"]["X-Partner-Key"] == "sandbox-key"
    assert seen["headers"]["Host"] == f"{proxy_api.partner}.partner.sandbox.test"  # the backend's own name


def test_the_backends_error_status_comes_back_to_the_caller(sandbox: Any, proxy_api: ProxyApi) -> None:
    sandbox.control("POST", f"partners/{proxy_api.partner}", {"fail_next": 1, "status": 503})
    status, _, answer = send(f"{proxy_api.base}/pos/r-42/orders", b'{"order_id": "o-2"}', proxy_api.caller)
    assert (status, answer) == (503, {"status": "error"})


def test_a_greedy_path_is_passed_through_whole(sandbox: Any, proxy_api: ProxyApi) -> None:
    status, _, _ = send(f"{proxy_api.base}/open/menus/r-7/today", b'{"menu": "lunch"}')
    assert status == 200
    assert any(r["path"] == "/menus/r-7/today" and r["body"] == {"menu": "lunch"}
               for r in received(sandbox, proxy_api.partner))


def test_an_unsigned_call_to_an_iam_method_is_403_missing_authentication_token(
        sandbox: Any, proxy_api: ProxyApi) -> None:
    status, _, answer = send(f"{proxy_api.base}/pos/r-42/orders", b'{"order_id": "unsigned"}')
    assert (status, answer) == (403, {"message": "Missing Authentication Token"})
    assert not any(r["body"] == {"order_id": "unsigned"} for r in received(sandbox, proxy_api.partner))


def test_a_caller_no_policy_allows_is_403_with_awss_message_and_nothing_reaches_the_backend(
        sandbox: Any, proxy_api: ProxyApi) -> None:
    status, headers, answer = send(f"{proxy_api.base}/pos/r-42/orders", b'{"order_id": "stranger"}',
                                   proxy_api.stranger)
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "is not authorized to perform: execute-api:Invoke" in answer["Message"]
    assert not any(r["body"] == {"order_id": "stranger"} for r in received(sandbox, proxy_api.partner))


def test_an_unknown_key_is_403_invalid_security_token(proxy_api: ProxyApi) -> None:
    forged = {**proxy_api.caller, "AccessKeyId": "ASIAUNKNOWNUNKNOWN00"}
    status, _, answer = send(f"{proxy_api.base}/pos/r-42/orders", b"{}", forged)
    assert (status, answer) == (403, {"message": "The security token included in the request is invalid."})


def test_a_backend_slower_than_the_integration_timeout_is_504(aws: Callable[[str], Any], sandbox: Any,
                                                              proxy_api: ProxyApi) -> None:
    gateway = aws("apigateway")
    resource = next(r["id"] for r in gateway.get_resources(restApiId=proxy_api.api_id)["items"]
                    if r["path"] == "/open/{proxy+}")
    partner_url = sandbox.control("GET", f"partners/{proxy_api.partner}")["url"]
    gateway.put_integration(restApiId=proxy_api.api_id, resourceId=resource, httpMethod="ANY", type="HTTP_PROXY",
                            integrationHttpMethod="ANY", uri=f"{partner_url}/{{proxy}}", timeoutInMillis=500,
                            requestParameters={"integration.request.path.proxy": "method.request.path.proxy"})
    gateway.create_deployment(restApiId=proxy_api.api_id, stageName="dev")
    sandbox.control("POST", f"partners/{proxy_api.partner}", {"latency_s": 2.0})
    try:
        status, _, answer = send(f"{proxy_api.base}/open/slow", b"{}")
    finally:
        sandbox.control("POST", f"partners/{proxy_api.partner}", {})
    assert (status, answer) == (504, {"message": "Endpoint request timed out"})


def test_a_backend_that_cannot_be_reached_is_504(aws: Callable[[str], Any], sandbox: Any) -> None:
    gateway = aws("apigateway")
    api_id = gateway.create_rest_api(name=unique("gone"))["id"]
    root = next(r["id"] for r in gateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    gateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    gateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="POST", type="HTTP_PROXY",
                            integrationHttpMethod="POST", uri="http://127.0.0.1:9/closed")
    gateway.create_deployment(restApiId=api_id, stageName="dev")
    status, _, answer = send(f"{sandbox.gateway_url}/restapis/{api_id}/dev/", b"{}")
    assert (status, answer) == (504, {"message": "Internal server error"})


def test_a_mapping_the_sandbox_does_not_serve_is_500_not_a_silent_skip(aws: Callable[[str], Any], sandbox: Any,
                                                                       proxy_api: ProxyApi) -> None:
    gateway = aws("apigateway")
    api_id = gateway.create_rest_api(name=unique("ctx"))["id"]
    root = next(r["id"] for r in gateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    gateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    partner_url = sandbox.control("GET", f"partners/{proxy_api.partner}")["url"]
    gateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="POST", type="HTTP_PROXY",
                            integrationHttpMethod="POST", uri=f"{partner_url}/ctx",
                            requestParameters={"integration.request.header.X-Request": "context.requestId"})
    gateway.create_deployment(restApiId=api_id, stageName="dev")
    status, _, answer = send(f"{sandbox.gateway_url}/restapis/{api_id}/dev/", b'{"mapped": "context"}')
    assert (status, answer) == (500, {"message": "Internal server error"})
    assert not any(r["body"] == {"mapped": "context"} for r in received(sandbox, proxy_api.partner))
