"""The ALB front door: listener rules in priority order, conditions, actions and Lambda targets."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tapharness.sandbox.alb import alb_event, condition_holds, local_alb_url, translate
from tapharness.sandbox.web import HttpRequest

from .helpers import unique, zip_sources

ECHO = """
import json
def lambda_handler(event, context):
    if event["path"] == "/boom":
        raise RuntimeError("asked to fail")
    headers = {"X-Path": [event["path"]]} if "multiValueHeaders" in event else {"X-Path": event["path"]}
    key = "multiValueHeaders" if "multiValueHeaders" in event else "headers"
    return {"statusCode": 200, "statusDescription": "200 OK", key: headers, "body": json.dumps(event)}
"""


@dataclass
class Alb:
    base: str
    empty_group: str


@pytest.fixture(scope="module")
def alb(aws: Callable[[str], Any], role_arn: str, sandbox: Any) -> Alb:
    ec2, elb, lam = aws("ec2"), aws("elbv2"), aws("lambda")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.99.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("ab")]
    balancer = elb.create_load_balancer(Name=unique("alb")[:30], Subnets=subnets, Scheme="internal",
                                        Type="application")["LoadBalancers"][0]
    function = lam.create_function(FunctionName=unique("alb-echo"), Runtime="python3.12", Role=role_arn,
                                   Handler="handler.lambda_handler",
                                   Code={"ZipFile": zip_sources({"handler.py": ECHO})})["FunctionArn"]
    groups = {}
    for name, multi in (("single", "false"), ("multi", "true"), ("empty", "false")):
        arn = elb.create_target_group(Name=unique(name)[:30], TargetType="lambda")["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
            {"Key": "lambda.multi_value_headers.enabled", "Value": multi}])
        groups[name] = arn
    for name in ("single", "multi"):
        lam.add_permission(FunctionName=function, StatementId=name, Action="lambda:InvokeFunction",
                           Principal="elasticloadbalancing.amazonaws.com", SourceArn=groups[name])
        elb.register_targets(TargetGroupArn=groups[name], Targets=[{"Id": function}])
    listener = elb.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80, DefaultActions=[
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "application/json",
                                                           "MessageBody": '{"error": "none"}'}}])["Listeners"][0]
    rules = [
        (5, [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/old/*"]}}],
         {"Type": "redirect", "RedirectConfig": {"Path": "/new/#{path}", "StatusCode": "HTTP_301"}}),
        (10, [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
              {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Multi", "Values": ["yes"]}}],
         {"Type": "forward", "TargetGroupArn": groups["multi"]}),
        (20, [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/boom"]}},
              {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}}],
         {"Type": "forward", "TargetGroupArn": groups["single"]}),
        (30, [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/empty"]}}],
         {"Type": "forward", "TargetGroupArn": groups["empty"]}),
    ]
    for priority, conditions, action in rules:
        elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=priority, Conditions=conditions, Actions=[action])
    return Alb(local_alb_url(f"http://{balancer['DNSName']}", sandbox.gateway_url), groups["empty"])


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_matching_rule_forwards_to_the_lambda_target_with_the_alb_event(alb: Alb) -> None:
    status, headers, body = call(f"{alb.base}/api/items?a=1")
    event = json.loads(body)
    assert status == 200 and headers["X-Path"] == "/api/items"
    assert event["httpMethod"] == "GET" and event["path"] == "/api/items"
    assert event["queryStringParameters"] == {"a": "1"} and "elb" in event["requestContext"]


def test_the_lower_priority_number_wins_and_multi_value_headers_follow_the_group(alb: Alb) -> None:
    _, _, body = call(f"{alb.base}/api/items?a=1&a=2", headers={"X-Multi": "yes"})
    event = json.loads(body)
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]} and "headers" not in event


def test_no_matching_rule_gets_the_default_fixed_response(alb: Alb) -> None:
    status, _, body = call(f"{alb.base}/api/items", method="POST")
    assert (status, json.loads(body)) == (404, {"error": "none"})


def test_a_redirect_rule_answers_with_the_location(alb: Alb) -> None:
    status, headers, _ = call(f"{alb.base}/old/page")
    assert status == 301 and headers["Location"].endswith("/new/old/page")


def test_a_function_error_is_502_and_an_empty_group_503(alb: Alb) -> None:
    assert call(f"{alb.base}/boom")[0] == 502
    assert call(f"{alb.base}/empty")[0] == 503


def test_the_stack_url_maps_to_the_gateway() -> None:
    assert local_alb_url("http://internal-x-1.us-east-1.elb.amazonaws.com:8080/a", "http://127.0.0.1:9") == \
        "http://127.0.0.1:9/elb/internal-x-1.us-east-1.elb.amazonaws.com:8080/a"
    assert local_alb_url("http://internal-x-1.us-east-1.elb.amazonaws.com", "http://127.0.0.1:9") == \
        "http://127.0.0.1:9/elb/internal-x-1.us-east-1.elb.amazonaws.com:80"


@pytest.mark.parametrize(("condition", "holds"), [
    ({"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}}, True),
    ({"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}]}}, True),
    ({"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}, True),
    ({"Field": "source-ip", "SourceIpConfig": {"Values": ["192.168.0.0/16"]}}, False),
    ({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a?c"]}}, True),
])
def test_conditions(condition: dict[str, Any], holds: bool) -> None:
    request = HttpRequest("GET", "/abc", "v=2", [("Host", "api.example.com")], source_ip="10.1.2.3")
    assert condition_holds(condition, request, "/abc") is holds


def test_a_malformed_target_answer_is_502() -> None:
    assert translate(False, {"statusCode": "200"}).status == 502
    assert translate(False, "just a string").status == 502


def test_a_binary_body_reaches_the_target_base64_encoded() -> None:
    event = alb_event(HttpRequest("POST", "/x", "", [], b"\xff"), "/x", "arn:tg", False)
    assert event["isBase64Encoded"] is True and event["body"] == "/w=="
