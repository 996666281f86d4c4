"""Deployed HTTP APIs (API Gateway v2) served over HTTP; moto stores them but does not serve them.

URL: ``http://127.0.0.1:<gateway port>/apis/<api_id>/<path>`` for the ``$default`` stage (a
stack's invoke URL ``https://<api_id>.execute-api.<region>.amazonaws.com/``), or
``/apis/<api_id>/<stage>/<path>`` for a named stage; requests whose Host header is
``<api_id>.execute-api.<region>.amazonaws.com`` are served too.

Per request, from moto's API Gateway v2 model in this process: the API and its stage (none →
404 ``{"message":"Not Found"}``), the route whose key matches (``METHOD /path`` with literal
segments before ``{param}`` before ``{proxy+}``, then ``ANY``, then ``$default``; none → 404),
its ``AWS_PROXY`` integration's function, invoked as the Lambda service invokes it once the
function's resource policy lets ``apigateway.amazonaws.com`` in for the route's ``execute-api``
ARN, with the payload format 2.0 event (an integration asking for 1.0 answers 500: not served). The answer as
HTTP APIs give it: a ``statusCode`` response as written, any other JSON value as a 200
``application/json`` body, a function error or a malformed response ``500 {"message":"Internal
Server Error"}``, a body over 10 MB ``413``. The stage's access log settings get one line per
request. Routes with IAM authorization (``AWS_IAM``) take only callers allowed ``execute-api:Invoke``
(``_iam_refusal``). Not emulated: JWT and Lambda authorizers, throttling, CORS, parameter mapping, non-Lambda integrations.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from moto.apigatewayv2.models import Api, Route, apigatewayv2_backends

from tapharness.sandbox import metrics
from tapharness.sandbox.clients import AwsClients, Invoker
from tapharness.sandbox.web import (
    HttpRequest,
    HttpResponse,
    match_resource,
    path_specificity,
)

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.httpapi")

MAX_BODY_BYTES = 10 * 1024 * 1024
_FUNCTION_IN_URI = re.compile(r"(?:/functions/)?(?P<arn>arn:[^:]+:lambda:[^/]+?)(?:/invocations)?$")
_CONTEXT_VAR = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class HttpApiRoute:
    api_id: str
    stage: str
    path: str


def select_route(route_keys: list[str], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The route key API Gateway picks for a request, with its path parameters.

    The most specific path wins (no greedy ``{proxy+}`` before greedy; more literal segments
    first); for one path an exact method beats ``ANY``; ``$default`` catches the rest."""
    best: tuple[tuple[int, int, int], str, dict[str, str]] | None = None
    for key in route_keys:
        if key == "$default":
            continue
        route_method, _, template = key.partition(" ")
        if route_method not in (method, "ANY"):
            continue
        params = match_resource(template, path)
        if params is None:
            continue
        rank = (*path_specificity(template), int(route_method == method))
        if best is None or rank > best[0]:
            best = (rank, key, params)
    if best is not None:
        return best[1], best[2]
    return ("$default", {}) if "$default" in route_keys else None


class HttpApiDoor:
    """Serves API Gateway v2 HTTP APIs from moto's configuration, invoking functions through Lambda."""

    def __init__(self, clients: AwsClients, guard: ServiceGuard | None, account_id: str, invoker: Invoker,
                 write_log: Any) -> None:
        self.clients = clients
        self.guard = guard
        self.account_id = account_id
        self.invoker = invoker
        self.write_log = write_log  # (destination ARN, stream name, line) -> None

    def _api(self, api_id: str) -> Api | None:
        return apigatewayv2_backends[self.account_id][self.clients.region].apis.get(api_id)

    def route_for(self, host_api: str | None, path: str) -> HttpApiRoute | None:
        """The HTTP API a request is for: by Host header, or by the ``/apis/<id>`` prefix."""
        segments = path.split("/")
        if host_api is not None:
            api_id, rest = host_api, segments[1:]
        elif len(segments) >= 3 and segments[1] == "apis" and segments[2]:
            api_id, rest = segments[2], segments[3:]
        else:
            return None
        api = self._api(api_id)
        if api is None or api.protocol_type != "HTTP":
            return None
        if rest and rest[0] in api.stages and rest[0] != "$default":
            return HttpApiRoute(api_id, rest[0], "/" + "/".join(rest[1:]))
        return HttpApiRoute(api_id, "$default", "/" + "/".join(rest))

    def handle(self, request: HttpRequest, route: HttpApiRoute) -> HttpResponse:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        context: dict[str, Any] = {"requestId": request_id, "identity.sourceIp": request.source_ip,
                                   "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "routeKey": "-",
                                   "httpMethod": request.method, "path": route.path, "stage": route.stage,
                                   "apiId": route.api_id, "protocol": "HTTP/1.1"}
        api = self._api(route.api_id)
        stage = api.stages.get(route.stage) if api else None
        if api is None or stage is None:
            return HttpResponse.json(404, {"message": "Not Found"})
        try:
            response = self._serve(request, route, api, context, now)
        except Exception:  # a sandbox fault answers as API Gateway's own do, never a dropped connection
            log.exception("http api: %s %s failed", request.method, request.path)
            response = HttpResponse.json(500, {"message": "Internal Server Error"})
        response.headers.append(("apigw-requestid", request_id))
        metrics.api_request(self.account_id, self.clients.region, {"ApiId": route.api_id, "Stage": route.stage},
                            response.status, (time.monotonic() - started) * 1000, http_api=True)
        settings = stage.access_log_settings or {}
        if settings.get("DestinationArn") and settings.get("Format"):
            context.update(status=response.status, responseLength=len(response.body),
                           responseLatency=int((time.monotonic() - started) * 1000))
            line = _CONTEXT_VAR.sub(lambda m: str(context.get(m.group(1), "-")), settings["Format"])
            self.write_log(settings["DestinationArn"], f"sandbox-{route.api_id}-{route.stage}", line)
        return response

    def _serve(self, request: HttpRequest, route: HttpApiRoute, api: Api, context: dict[str, Any],
               now: datetime) -> HttpResponse:
        routes: dict[str, Route] = {r.route_key: r for r in api.routes.values()}
        chosen = select_route(list(routes), request.method, route.path)
        if chosen is None:
            return HttpResponse.json(404, {"message": "Not Found"})
        route_key, path_params = chosen
        context["routeKey"] = route_key
        if (routes[route_key].authorization_type or "NONE") == "AWS_IAM" and not self._iam_allows(
                request, f"arn:aws:execute-api:{self.clients.region}:{self.account_id}:{route.api_id}/{route.stage}/"
                         f"{request.method}{route.path}"):
            return HttpResponse.json(403, {"message": "Forbidden"})
        target = routes[route_key].target or ""
        integration = api.integrations.get(target.removeprefix("integrations/"))
        function = _FUNCTION_IN_URI.search(integration.integration_uri or "") if integration else None
        if integration is None or integration.integration_type != "AWS_PROXY" or function is None:
            log.warning("http api: route %s has no Lambda proxy integration", route_key)
            return HttpResponse.json(500, {"message": "Internal Server Error"})
        if (integration.payload_format_version or "2.0") != "2.0":
            log.warning("http api: route %s asks for payload format %s; the sandbox serves 2.0 only", route_key,
                        integration.payload_format_version)
            return HttpResponse.json(500, {"message": "Internal Server Error"})
        if len(request.body) > MAX_BODY_BYTES:
            return HttpResponse.json(413, {"message": "Request Entity Too Large"})
        resource = route_key.partition(" ")[2] if route_key != "$default" else "$default"
        source_arn = (f"arn:aws:execute-api:{self.clients.region}:{self.account_id}:{route.api_id}/{route.stage}/"
                      f"{request.method}{route.path if resource == '$default' else resource}")
        if self.guard is not None and not self.guard.may_deliver("apigateway.amazonaws.com", function["arn"],
                                                                 source_arn, self.account_id):
            log.warning("http api: %s may not invoke %s", source_arn, function["arn"])
            context["integrationErrorMessage"] = "Invalid permissions on Lambda function"
            return HttpResponse.json(500, {"message": "Internal Server Error"})
        event = self.event_v2(request, route, route_key, path_params, api.stages[route.stage].stage_variables,
                              context["requestId"], now)
        outcome = self.invoker.invoke(function["arn"], event)
        context["integrationStatus"] = 200
        return translate_v2(outcome.function_error, outcome.payload)

    def _iam_allows(self, request: HttpRequest, resource: str) -> bool:
        """A route with IAM authorization, decided before anything else of the route: the caller
        must sign for ``execute-api`` and be allowed ``execute-api:Invoke`` on the request's ARN
        (``<api>/<stage>/<METHOD>/<path>``) by its identity policies alone, HTTP APIs having no
        resource policies (API Gateway, "Control access to HTTP APIs with IAM authorization"). An
        HTTP API answers every refusal 403 ``{"message": "Forbidden"}`` (unsigned, unknown key or not
        allowed alike; as reported in aws/aws-cdk#21182)."""
        if self.guard is None:
            return True
        verdict = self.guard.execute_api_caller({k.lower(): v for k, v in request.headers}, request.query,
                                                "execute-api:Invoke", resource, self.clients.region)
        if verdict.denial:
            log.info("http api: %s", verdict.denial)
        return verdict.allowed

    def event_v2(self, request: HttpRequest, route: HttpApiRoute, route_key: str, path_params: dict[str, str],
                 stage_variables: dict[str, str], request_id: str, now: datetime) -> dict[str, Any]:
        """The payload format 2.0 event: headers lower-cased and joined with commas, cookies apart."""
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for key, value in request.headers:
            name = key.lower()
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        body, is_base64 = _event_body(request.body, headers.get("content-type", "application/json").lower())
        host = headers.get("host", f"{route.api_id}.execute-api.{self.clients.region}.amazonaws.com")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": route.path if route.stage == "$default" else f"/{route.stage}{route.path}",
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "accountId": self.account_id, "apiId": route.api_id, "domainName": host,
                "domainPrefix": host.split(".")[0], "requestId": request_id, "routeKey": route_key,
                "stage": route.stage, "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
                "http": {"method": request.method, "path": route.path, "protocol": "HTTP/1.1",
                         "sourceIp": request.source_ip, "userAgent": headers.get("user-agent", "")},
            },
            "isBase64Encoded": is_base64,
        }
        optional = {"cookies": cookies, "queryStringParameters": query, "pathParameters": path_params,
                    "stageVariables": stage_variables, "body": body}
        event.update({k: v for k, v in optional.items() if v})
        return event


def _event_body(raw: bytes, content_type: str) -> tuple[str | None, bool]:
    """(body, isBase64Encoded): text media types as a string when they are UTF-8, the rest base64."""
    if not raw:
        return None, False
    if content_type.startswith(_TEXT_TYPES):
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode(), True


def translate_v2(function_error: bool, payload: Any) -> HttpResponse:
    """A Lambda response under payload format 2.0 as the HTTP response API Gateway sends."""
    failed = HttpResponse.json(500, {"message": "Internal Server Error"})
    if function_error:
        return failed
    if not (isinstance(payload, dict) and "statusCode" in payload):
        return HttpResponse(200, json.dumps(payload).encode(), [("Content-Type", "application/json")])
    status, body = payload.get("statusCode"), payload.get("body", "")
    if not isinstance(status, int) or not 100 <= status <= 599 or not isinstance(body, str):
        return failed
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(c)) for c in payload.get("cookies") or []]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, raw, headers)
