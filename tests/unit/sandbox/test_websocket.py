"""The WebSocket data plane: connections at a stage's URL, $connect/$disconnect, route selection,
route responses, AWS's limits and the @connections management API, with real WebSocket clients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tapharness.sandbox.apigw import local_invoke_url
from tapharness.sandbox.websocket import choose_route, selection_value

from .helpers import Recorder, role_credentials, unique, zip_sources

ACCOUNT = "123456789012"

# One function behind every route: it records each event, and answers by route key.
HANDLER = Recorder.HANDLER_HELPER + """
def lambda_handler(event, context):
    ctx = event["requestContext"]
    record(event)
    route = ctx["routeKey"]
    query = event.get("queryStringParameters") or {}
    if route == "$connect" and query.get("deny"):
        return {"statusCode": 401, "body": "not you"}
    if route == "$connect" and query.get("slow"):
        import time
        time.sleep(1.5)
    if route == "$connect" and query.get("protocol"):
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    if route == "slow":
        import time
        time.sleep(3)
        return {"statusCode": 200, "body": "too late"}
    if route == "fail":
        raise RuntimeError("asked to fail")
    if route == "echo":
        return {"statusCode": 200, "body": json.dumps({"route": route, "body": event["body"],
                                                       "connectionId": ctx["connectionId"]})}
    if route == "push":
        # As a backend does on AWS: the callback URL from the event, the SDK signing for execute-api.
        client = boto3.client("apigatewaymanagementapi", endpoint_url=f"https://{ctx['domainName']}/{ctx['stage']}")
        client.post_to_connection(ConnectionId=ctx["connectionId"], Data=b"pushed by the backend")
        record({"pushed": client.get_connection(ConnectionId=ctx["connectionId"])["Identity"]["SourceIp"]})
    return {"statusCode": 200}
"""


@dataclass
class WsApi:
    api_id: str
    url: str  # the stage's local ws:// URL
    management: str  # its local @connections base URL (http://)
    function: str


def make_api(aws: Callable[[str], Any], role_arn: str, sandbox: Any, recorder: Recorder,
             routes: dict[str, bool], auto_deploy: bool = True) -> WsApi:
    """A WebSocket API ({route key: two-way}) on one recording function, stage ``live``."""
    v2 = aws("apigatewayv2")
    function = aws("lambda").create_function(
        FunctionName=unique("ws"), Runtime="python3.12", Role=role_arn, Handler="handler.lambda_handler",
        Code={"ZipFile": zip_sources({"handler.py": HANDLER})}, Timeout=20,
        Environment={"Variables": recorder.env})["FunctionArn"]
    api_id = v2.create_api(Name=unique("ws"), ProtocolType="WEBSOCKET",
                           RouteSelectionExpression="$request.body.action")["ApiId"]
    aws("lambda").add_permission(FunctionName=function, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn=f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{api_id}/*")
    integration = v2.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationMethod="POST",
        IntegrationUri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function}/invocations")
    for key, two_way in routes.items():
        add_route(aws, api_id, integration["IntegrationId"], key, two_way)
    v2.create_stage(ApiId=api_id, StageName="live", AutoDeploy=auto_deploy)
    url = local_invoke_url(f"wss://{api_id}.execute-api.us-east-1.amazonaws.com/live", sandbox.gateway_url)
    management = local_invoke_url(f"https://{api_id}.execute-api.us-east-1.amazonaws.com/live", sandbox.gateway_url)
    return WsApi(api_id, url, management, function)


def add_route(aws: Callable[[str], Any], api_id: str, integration_id: str, key: str, two_way: bool,
              route_response: bool = True) -> None:
    """A route; a two-way one has a selection expression and (unless ``route_response`` is False) a route response."""
    v2 = aws("apigatewayv2")
    route = v2.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integration_id}",
                            **({"RouteResponseSelectionExpression": "$default"} if two_way else {}))
    if two_way and route_response:
        v2.create_route_response(ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default")


@pytest.fixture(scope="module")
def module_recorder(aws: Callable[[str], Any]) -> Recorder:
    return Recorder(aws("sqs"), aws("sqs").create_queue(QueueName=unique("wsrecord"))["QueueUrl"])


@pytest.fixture(scope="module")
def api(aws: Callable[[str], Any], role_arn: str, sandbox: Any, module_recorder: Recorder) -> WsApi:
    made = make_api(aws, role_arn, sandbox, module_recorder, {
        "$connect": False, "$disconnect": False, "$default": False, "echo": True, "fail": True, "push": False,
        "slow": True})
    integration = aws("apigatewayv2").get_integrations(ApiId=made.api_id)["Items"][0]["IntegrationId"]
    add_route(aws, made.api_id, integration, "half", two_way=True, route_response=False)
    return made


@pytest.fixture
def socket_to(api: WsApi) -> Iterator[Callable[..., ClientConnection]]:
    """socket_to(query, url=..., **connect options): a client connection, closed after the test."""
    with ExitStack() as opened:
        yield lambda query="", url=None, **kwargs: opened.enter_context(
            connect(f"{url or api.url}{query}", open_timeout=30, close_timeout=5, **kwargs))


def events(recorder: Recorder, predicate: Callable[[dict[str, Any]], bool], what: str) -> list[dict[str, Any]]:
    seen = recorder.wait_for(lambda all_seen: any(predicate(e) for e in all_seen), what=what)
    return [e for e in seen if predicate(e)]


def connection_of(recorder: Recorder, marker: str) -> str:
    """The id of the connection whose $connect carried ``?marker=<marker>``."""
    (connected,) = events(recorder, lambda e: (e.get("queryStringParameters") or {}).get("marker") == marker,
                          f"$connect of {marker}")
    return connected["requestContext"]["connectionId"]


# --- route selection (pure) -------------------------------------------------------------------

def test_a_route_selection_expression_reads_the_messages_json() -> None:
    assert selection_value("$request.body.action", '{"action": "track"}') == "track"
    assert selection_value("${request.body.service}/${request.body.action}",
                           '{"service": "chat", "action": "join"}') == "chat/join"
    assert selection_value("$request.body.data.room", '{"data": {"room": 7}}') == "7"


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"other": 1}'])
def test_a_message_without_the_selected_value_goes_to_default(body: str) -> None:
    assert choose_route({"$default", "track"}, "$request.body.action", body) == "$default"


def test_an_unmatched_message_has_no_route_without_default() -> None:
    assert choose_route({"track"}, "$request.body.action", '{"action": "other"}') is None
    assert choose_route({"$connect", "track"}, "$request.body.action", '{"action": "$connect"}') is None


# --- connections ------------------------------------------------------------------------------

def test_connect_is_invoked_with_the_handshakes_headers_and_query_string(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder, api: WsApi) -> None:
    socket_to("?marker=hello&role=customer", additional_headers={"X-App-Version": "7"})
    (event,) = events(module_recorder, lambda e: (e.get("queryStringParameters") or {}).get("marker") == "hello",
                      "$connect")
    context = event["requestContext"]
    assert (context["routeKey"], context["eventType"], context["stage"], context["apiId"]) == (
        "$connect", "CONNECT", "live", api.api_id)
    assert context["domainName"] == f"{api.api_id}.execute-api.us-east-1.amazonaws.com"
    assert event["headers"]["Host"] == context["domainName"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1" and event["headers"]["X-Forwarded-Proto"] == "https"
    assert event["queryStringParameters"] == {"marker": "hello", "role": "customer"}
    assert event["headers"]["X-App-Version"] == "7" and event["multiValueHeaders"]["X-App-Version"] == ["7"]


def test_a_non_2xx_answer_of_connect_refuses_the_upgrade_with_that_status(
        socket_to: Callable[..., ClientConnection]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        socket_to("?deny=1")
    assert refused.value.response.status_code == 401


def test_the_headers_connect_answers_reach_the_client_with_the_handshake(
        socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to("?protocol=orders.v1", subprotocols=["orders.v1"])
    assert ws.subprotocol == "orders.v1"


def test_a_route_with_a_selection_expression_but_no_route_response_sends_nothing_back(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder) -> None:
    ws = socket_to()
    half = json.dumps({"action": "half", "n": "one-way after all"})
    ws.send(half)
    events(module_recorder, lambda e: e.get("body") == half, "the half route's invocation")
    ws.send(json.dumps({"action": "echo", "n": 2}))
    assert json.loads(ws.recv(timeout=30))["route"] == "echo"  # the first answer is echo's: half sent none


def test_an_integration_slower_than_its_timeout_is_answered_endpoint_request_timed_out(
        sandbox: Any, socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to()  # connected under the usual limit: a cold start of $connect's function may take a second
    sandbox.control("POST", "websockets", {"integration_s": 1.0})
    try:
        ws.send(json.dumps({"action": "slow"}))
        answer = json.loads(ws.recv(timeout=30))
    finally:
        sandbox.control("POST", "websockets", {"integration_s": 29})
    assert answer["message"] == "Endpoint request timed out"


def test_a_message_goes_to_the_route_its_action_names_and_a_two_way_route_answers(
        socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to()
    ws.send(json.dumps({"action": "echo", "n": 1}))
    answer = json.loads(ws.recv(timeout=30))
    assert answer["route"] == "echo" and json.loads(answer["body"]) == {"action": "echo", "n": 1}


@pytest.mark.parametrize("message", ["plain text", '{"action": "no-such-route"}'])
def test_a_message_no_route_matches_goes_to_default(socket_to: Callable[..., ClientConnection],
                                                    module_recorder: Recorder, message: str) -> None:
    ws = socket_to()
    ws.send(message)
    (event,) = events(module_recorder, lambda e: e.get("body") == message, f"$default with {message!r}")
    assert (event["requestContext"]["routeKey"], event["requestContext"]["eventType"]) == ("$default", "MESSAGE")


def test_a_function_error_is_sent_to_the_client_as_internal_server_error(
        socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to()
    ws.send(json.dumps({"action": "fail"}))
    answer = json.loads(ws.recv(timeout=30))
    assert answer["message"] == "Internal server error" and answer["connectionId"] and answer["requestId"]


def test_without_a_default_route_an_unmatched_message_is_answered_forbidden(
        aws: Callable[[str], Any], role_arn: str, sandbox: Any, module_recorder: Recorder,
        socket_to: Callable[..., ClientConnection]) -> None:
    strict = make_api(aws, role_arn, sandbox, module_recorder, {"echo": True})
    ws = socket_to(url=strict.url)
    ws.send(json.dumps({"action": "other"}))
    assert json.loads(ws.recv(timeout=30))["message"] == "Forbidden"


def test_closing_invokes_disconnect_and_the_connection_is_then_gone(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder, api: WsApi,
        manager: dict[str, str]) -> None:
    ws = socket_to("?marker=leaving")
    connection_id = connection_of(module_recorder, "leaving")
    ws.close(code=1000, reason="bye")
    (event,) = events(module_recorder, lambda e: e.get("requestContext", {}).get("routeKey") == "$disconnect"
                      and e["requestContext"].get("connectionId") == connection_id, "$disconnect")
    assert (event["requestContext"]["eventType"], event["requestContext"]["disconnectStatusCode"]) == ("DISCONNECT", 1000)
    status, headers, _ = signed(f"{api.management}/@connections/{connection_id}", "POST", manager, b"late")
    assert (status, headers.get("x-amzn-ErrorType")) == (410, "GoneException")


# --- @connections -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manager(aws: Callable[[str], Any], api: WsApi) -> dict[str, str]:
    """Credentials of a role allowed execute-api:ManageConnections on the API's live stage only."""
    return role_credentials(aws, [{"Effect": "Allow", "Action": "execute-api:ManageConnections",
                                   "Resource": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{api.api_id}/live/*/@connections/*"}])


def signed(url: str, method: str, credentials: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """A request signed for execute-api, as the API Gateway Management API's SDK clients send it."""
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]),
              "execute-api", "us-east-1").add_auth(request)
    http = urllib.request.Request(url, data=body or None, method=method, headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(http, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_post_to_a_connection_reaches_its_socket_and_get_describes_it(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder, api: WsApi,
        manager: dict[str, str]) -> None:
    ws = socket_to("?marker=posted", user_agent_header="courier-app/3")
    connection_id = connection_of(module_recorder, "posted")
    status, _, _ = signed(f"{api.management}/@connections/{connection_id}", "POST", manager, b'{"driver": "d1"}')
    assert status == 200
    assert json.loads(ws.recv(timeout=30)) == {"driver": "d1"}
    status, _, body = signed(f"{api.management}/@connections/{connection_id}", "GET", manager)
    described = json.loads(body)
    assert status == 200 and described["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "courier-app/3"}


def test_a_message_over_32_kb_is_posted_whole_in_frames_of_32_kb(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder, api: WsApi,
        manager: dict[str, str]) -> None:
    # A client that takes frames of 32 KB at most: a larger one would close the connection with 1009.
    ws = socket_to("?marker=large", max_size=(200_000, 32 * 1024))
    connection_id = connection_of(module_recorder, "large")
    payload = ("x" * 100_000).encode()
    assert signed(f"{api.management}/@connections/{connection_id}", "POST", manager, payload)[0] == 200
    assert ws.recv(timeout=30) == payload.decode()
    status, headers, _ = signed(f"{api.management}/@connections/{connection_id}", "POST", manager, b"y" * 131_073)
    assert (status, headers.get("x-amzn-ErrorType")) == (413, "PayloadTooLargeException")


def test_deleting_a_connection_closes_its_socket(socket_to: Callable[..., ClientConnection],
                                                 module_recorder: Recorder, api: WsApi,
                                                 manager: dict[str, str]) -> None:
    ws = socket_to("?marker=deleted")
    connection_id = connection_of(module_recorder, "deleted")
    assert signed(f"{api.management}/@connections/{connection_id}", "DELETE", manager)[0] == 204
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=30)


def test_a_caller_not_allowed_to_manage_connections_is_403_and_nothing_is_sent(
        aws: Callable[[str], Any], socket_to: Callable[..., ClientConnection], module_recorder: Recorder,
        api: WsApi) -> None:
    ws = socket_to("?marker=guarded")
    connection_id = connection_of(module_recorder, "guarded")
    stranger = role_credentials(aws, [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}])
    status, headers, body = signed(f"{api.management}/@connections/{connection_id}", "POST", stranger, b"sneaky")
    assert (status, headers.get("x-amzn-ErrorType")) == (403, "AccessDeniedException")
    assert b"is not authorized to perform: execute-api:ManageConnections" in body
    with pytest.raises(TimeoutError):
        ws.recv(timeout=1)


def test_a_function_posts_to_its_callers_connection_through_the_management_api_over_https(
        socket_to: Callable[..., ClientConnection], module_recorder: Recorder) -> None:
    ws = socket_to()
    ws.send(json.dumps({"action": "push"}))
    assert ws.recv(timeout=60) == "pushed by the backend"
    assert events(module_recorder, lambda e: "pushed" in e, "the function's GetConnection")[0]["pushed"] == "127.0.0.1"


# --- limits -----------------------------------------------------------------------------------

def test_a_frame_over_32_kb_closes_the_connection_with_1009(socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to()
    ws.send("z" * (32 * 1024 + 1))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_binary_frame_closes_the_connection_with_1003(socket_to: Callable[..., ClientConnection]) -> None:
    ws = socket_to()
    ws.send(b"\x00\x01")
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


def test_pings_do_not_keep_an_idle_connection_open(sandbox: Any, socket_to: Callable[..., ClientConnection]) -> None:
    sandbox.control("POST", "websockets", {"idle_s": 2})
    try:
        ws = socket_to()
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(12):
                ws.ping().wait(timeout=5)
                time.sleep(0.5)
    finally:
        sandbox.control("POST", "websockets", {"idle_s": 600})
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_the_idle_clock_starts_when_the_connection_opens_not_before_connect_ran(
        sandbox: Any, socket_to: Callable[..., ClientConnection]) -> None:
    sandbox.control("POST", "websockets", {"idle_s": 1.0})
    try:
        ws = socket_to("?slow=1")  # $connect takes 1.5 s, longer than the idle limit
        ws.send(json.dumps({"action": "echo", "n": "right after connecting"}))
        assert json.loads(ws.recv(timeout=30))["route"] == "echo"
    finally:
        sandbox.control("POST", "websockets", {"idle_s": 600})


def test_an_idle_connection_is_closed_with_1001(sandbox: Any, socket_to: Callable[..., ClientConnection]) -> None:
    sandbox.control("POST", "websockets", {"idle_s": 1.5})
    try:
        ws = socket_to()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    finally:
        sandbox.control("POST", "websockets", {"idle_s": 600})
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


# --- deployments ------------------------------------------------------------------------------

def test_a_stage_without_a_deployment_takes_no_connection(
        aws: Callable[[str], Any], role_arn: str, sandbox: Any, module_recorder: Recorder,
        socket_to: Callable[..., ClientConnection]) -> None:
    undeployed = make_api(aws, role_arn, sandbox, module_recorder, {"$default": False}, auto_deploy=False)
    with pytest.raises(InvalidStatus) as refused:
        socket_to(url=undeployed.url)
    assert refused.value.response.status_code == 403


def test_a_stage_serves_its_deployment_until_the_next_one(
        aws: Callable[[str], Any], role_arn: str, sandbox: Any, module_recorder: Recorder,
        socket_to: Callable[..., ClientConnection]) -> None:
    staged = make_api(aws, role_arn, sandbox, module_recorder, {"$default": False}, auto_deploy=False)
    v2 = aws("apigatewayv2")
    v2.create_deployment(ApiId=staged.api_id, StageName="live")
    integration = v2.get_integrations(ApiId=staged.api_id)["Items"][0]["IntegrationId"]
    add_route(aws, staged.api_id, integration, "echo", True)
    ws = socket_to(url=staged.url)
    before = json.dumps({"action": "echo", "sent": "before the deployment"})
    ws.send(before)
    (event,) = events(module_recorder, lambda e: e.get("body") == before, "the message sent before the deployment")
    assert event["requestContext"]["routeKey"] == "$default"
    v2.create_deployment(ApiId=staged.api_id, StageName="live")
    ws.send(json.dumps({"action": "echo", "sent": "after"}))
    assert json.loads(ws.recv(timeout=30))["route"] == "echo"
