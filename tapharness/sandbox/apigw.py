"""The deployed APIs served over HTTP (moto stores them but does not serve stage URLs): REST APIs
here, HTTP APIs (v2) by ``tapharness.sandbox.httpapi``, Application Load Balancers by
``tapharness.sandbox.alb``.

A stack's invoke URL ``https://<api_id>.execute-api.<region>.amazonaws.com/<rest>`` maps to
``http://127.0.0.1:<gateway port>/apis/<api_id>/<rest>`` (``local_invoke_url``) whichever kind the
API is: for a REST API ``<rest>`` starts with the stage, for an HTTP API's ``$default`` stage it
is the route path; a WebSocket API's ``wss://<api_id>...`` stage URL maps to ``ws://`` (served by
``tapharness.sandbox.websocket``). ``/restapis/<api_id>/<stage>/<path>`` serves REST APIs too, and requests
whose Host header is ``<api_id>.execute-api.<region>.amazonaws.com`` are served by path alone.

Per request: the stage, read from moto's API Gateway model in this process (a redeploy shows at
once); the rest from the API Gateway API once per deployment of the stage, since a deployment
is immutable and a change takes effect with the next one, as on AWS: the stage (404 stage →
403), the resource that matches
(literal segments before ``{param}`` before ``{proxy+}``) and its method (or ``ANY``); the
method's request validator (required ``method.request.*`` parameters; the body against the
request model's JSON schema, draft 4); the ``AWS_PROXY`` integration's function, invoked as the
Lambda service invokes it (``invoker``: in-process in the sandbox) with the v1 proxy event, once
the function's resource policy lets
``apigateway.amazonaws.com`` in for this method's ``execute-api`` ARN (else 500, as API
Gateway answers "Invalid permissions on Lambda function"); the function's response translated back.
Errors as API Gateway answers them: unknown route ``403 {"message":"Missing Authentication
Token"}``, validation ``400 {"message": "Invalid request body"}`` (or the API's gateway
response for ``BAD_REQUEST_BODY``/``BAD_REQUEST_PARAMETERS`` when it defines one), a body over
10 MB ``413``, a function error or malformed response ``502 {"message": "Internal server
error"}``. The stage's access log settings, when present, get one line per request (written
to moto's CloudWatch Logs model in this process).
Methods with ``AWS_IAM`` authorization take only callers allowed ``execute-api:Invoke`` on
``<api>/<stage>/<METHOD>/<path>`` (``_iam_refusal``); ``HTTP_PROXY`` integrations pass the request to
their backend (``HttpBackends``: a partner's stand-in under the name the stack gives it).
Not emulated: Lambda and Cognito authorizers, resource policies, API keys and usage plans,
throttling, non-proxy integrations.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jsonschema
from botocore.exceptions import ClientError
from moto.apigateway.exceptions import RestAPINotFound, StageNotFoundException
from moto.apigateway.models import apigateway_backends
from moto.logs.models import logs_backends

from tapharness.sandbox import metrics
from tapharness.sandbox.alb import AlbDoor
from tapharness.sandbox.clients import AwsClients, Invoker
from tapharness.sandbox.httpapi import HttpApiDoor
from tapharness.sandbox.web import (
    HttpRequest,
    HttpResponse,
    Outbound,
    match_resource,
    path_specificity,
)
from tapharness.sandbox.websocket import WebSocketDoor

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.apigw")

MAX_BODY_BYTES = 10 * 1024 * 1024
_HOST_API = re.compile(r"^(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com(:\d+)?$")
_INVOKE_URL = re.compile(r"^(?P<scheme>https|wss)://(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?=/|$)")
_FUNCTION_IN_URI = re.compile(r"/functions/(?P<arn>arn:[^/]+)/invocations")
_CONTEXT_VAR = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


def local_invoke_url(invoke_url: str, gateway_url: str) -> str:
    """The sandbox URL for a stack's ``https://<api>.execute-api.<region>.amazonaws.com/<rest>`` (a
    WebSocket stage's ``wss://`` URL becomes a ``ws://`` one)."""
    match = _INVOKE_URL.match(invoke_url)
    if not match:
        raise ValueError(f"not an API Gateway invoke URL: {invoke_url}")
    local = f"{gateway_url.rstrip('/')}/apis/{match['api']}{invoke_url[match.end():]}"
    return "ws" + local.removeprefix("http") if match["scheme"] == "wss" else local


class HttpBackends:
    """``HTTP_PROXY`` integrations: the request passed through to the integration's URI and the
    backend's answer passed back, as API Gateway does ("Set up HTTP proxy integrations"): every
    header but the hop-by-hop ones, ``Host`` the backend's name, the query string. The
    integration's ``integration.request.{path,header,querystring}.<name>`` mappings (from a method
    request parameter or a quoted static value) fill the URI's ``{name}`` parts and add headers and
    query parameters; a mapping the sandbox does not serve (``context.*``, stage variables) answers
    500 and says so in the log. Backends are reached by the names the stack gives them
    (``web.Outbound``). No answer within the integration's timeout (29 s at most) is 504
    ``{"message": "Endpoint request timed out"}``; a backend that cannot be reached is 504, the
    status of INTEGRATION_FAILURE ("Gateway response types for API Gateway")."""

    _HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
                             "te", "trailer", "proxy-authorization"})

    def __init__(self, outbound: Outbound | None = None) -> None:
        self.outbound = outbound or Outbound()

    def forward(self, request: HttpRequest, integration: dict[str, Any], path_params: dict[str, str]) -> HttpResponse:
        uri = integration.get("uri") or ""
        headers = {k: v for k, v in request.headers if k.lower() not in self._HOP_BY_HOP}
        query = parse_qsl(request.query, keep_blank_values=True)
        for target, source in (integration.get("requestParameters") or {}).items():
            value = _mapped_value(source, request, path_params)
            place, _, name = target.removeprefix("integration.request.").partition(".")
            if value is None or place not in ("path", "header", "querystring"):
                log.warning("front door: the sandbox does not map %s = %s", target, source)
                return HttpResponse.json(500, {"message": "Internal server error"})
            if place == "path":
                uri = uri.replace("{" + name + "}", quote(value, safe="/"))
            elif place == "header":
                headers[name] = value
            else:
                query.append((name, value))
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or "{" in uri or "$" in uri:
            log.warning("front door: HTTP_PROXY integration to %r is not an HTTP URL the sandbox can call", uri)
            return HttpResponse.json(500, {"message": "Internal server error"})
        headers["Host"] = parts.netloc  # the backend's own name, whatever address the sandbox reaches it at
        path = parts.path or "/"
        query_string = "&".join(q for q in (parts.query, urlencode(query)) if q)
        timeout = min(float(integration.get("timeoutInMillis") or 29_000), 29_000) / 1000
        method = integration.get("httpMethod")
        try:
            connection = self.outbound.connection(parts.scheme, parts.hostname, parts.port, timeout)
        except OSError as exc:
            log.warning("front door: HTTP_PROXY to %s: %s", uri, exc)
            return HttpResponse.json(504, {"message": "Internal server error"})
        try:
            connection.request(method if method not in (None, "ANY") else request.method,
                               path + (f"?{query_string}" if query_string else ""), body=request.body or None,
                               headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except TimeoutError:
            return HttpResponse.json(504, {"message": "Endpoint request timed out"})
        except (OSError, http.client.HTTPException) as exc:
            # INTEGRATION_FAILURE's status (Developer Guide, "Gateway response types for API Gateway").
            log.warning("front door: HTTP_PROXY to %s failed: %s", uri, exc)
            return HttpResponse.json(504, {"message": "Internal server error"})
        finally:
            connection.close()
        passed = [(k, v) for k, v in answer.getheaders() if k.lower() not in self._HOP_BY_HOP]
        return HttpResponse(answer.status, body, passed)


def _mapped_value(source: str, request: HttpRequest, path_params: dict[str, str]) -> str | None:
    """The value of a request parameter mapping's source: ``method.request.<where>.<name>`` or ``'static'``."""
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    where, _, name = source.removeprefix("method.request.").partition(".")
    if where == "path":
        return path_params.get(name)
    if where == "header":
        return request.header(name)
    if where == "querystring":
        return dict(parse_qsl(request.query)).get(name)
    return None


@dataclass
class _Route:
    api_id: str
    stage: str
    path: str


class FrontDoor:
    """Serves API Gateway REST APIs from moto's configuration, invoking functions through Lambda."""

    def __init__(self, clients: AwsClients, guard: ServiceGuard | None = None,
                 account_id: str = "123456789012", invoker: Invoker | None = None,
                 backends: HttpBackends | None = None) -> None:
        self.clients = clients
        self.backends = backends or HttpBackends()
        self.guard = guard
        self.account_id = account_id
        self.invoker: Invoker = invoker or clients
        self._logs_lock = threading.Lock()
        # (api, deployment id, kind, key) -> what the API Gateway API answered: a deployment
        # is immutable, so its routes, methods, validators and models are read once.
        self._deployed: dict[tuple[str, str, str, str], Any] = {}
        self._deployed_lock = threading.Lock()
        self.http_apis = HttpApiDoor(clients, guard, account_id, self.invoker, self._write_log)
        self.load_balancers = AlbDoor(clients, guard, account_id, self.invoker)
        self.websockets = WebSocketDoor(clients.region, guard, account_id, self.invoker)

    def upgrade(self, request: HttpRequest, sock: socket.socket) -> HttpResponse | None:
        """An ``Upgrade: websocket`` request: served as a connection to a WebSocket API's stage until
        it closes (None), or the answer that refuses it."""
        host_api = _HOST_API.match((request.header("Host") or "").lower())
        target = self.websockets.route_for(host_api["api"] if host_api else None, request.path)
        if target is None:
            return self._missing_token()
        return self.websockets.upgrade(request, target, sock)

    def _route(self, request: HttpRequest) -> _Route | None:
        host = (request.header("Host") or "").lower()
        host_match = _HOST_API.match(host)
        segments = request.path.split("/")
        if host_match and len(segments) >= 2 and segments[1]:
            return _Route(host_match["api"], segments[1], "/" + "/".join(segments[2:]))
        if len(segments) >= 4 and segments[1] in ("restapis", "apis") and segments[2] and segments[3]:
            return _Route(segments[2], segments[3], "/" + "/".join(segments[4:]))
        return None

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request as API Gateway would."""
        balancer = self.load_balancers.route_for((request.header("Host") or "").lower(), request.path)
        if balancer is not None:
            return self.load_balancers.handle(request, *balancer)
        host_api = _HOST_API.match((request.header("Host") or "").lower())
        websocket = self.websockets.route_for(host_api["api"] if host_api else None, request.path)
        if websocket is not None:
            if websocket.path.startswith("/@connections/"):
                return self.websockets.manage(request, websocket)
            return HttpResponse.json(426, {"message": "Upgrade Required"})
        http_api = self.http_apis.route_for(host_api["api"] if host_api else None, request.path)
        if http_api is not None:
            return self.http_apis.handle(request, http_api)
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        route = self._route(request)
        context: dict[str, Any] = {"requestId": request_id, "httpMethod": request.method,
                                   "identity.sourceIp": request.source_ip, "protocol": "HTTP/1.1",
                                   "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")}
        stage: dict[str, Any] | None = None
        try:
            if route is None:
                response = self._missing_token()
            else:
                context.update(apiId=route.api_id, stage=route.stage, path=f"/{route.stage}{route.path}")
                stage = self._stage(route)
                response = (self._missing_token() if stage is None
                            else self._serve(request, route, stage, request_id, context))
        except ClientError as exc:
            log.warning("front door: AWS call failed: %s", exc)
            response = HttpResponse.json(500, {"message": "Internal server error"})
        except Exception:  # a sandbox fault answers as API Gateway's own do, never a dropped connection
            log.exception("front door: %s %s failed", request.method, request.path)
            response = HttpResponse.json(500, {"message": "Internal server error"})
        response.headers.append(("x-amzn-RequestId", request_id))
        if stage and route:
            latency_ms = (time.monotonic() - started) * 1000
            context.update(status=response.status, responseLength=len(response.body), responseLatency=int(latency_ms))
            self._access_log(route, stage, context)
            metrics.api_request(self.account_id, self.clients.region, {"ApiName": self._api_name(route.api_id),
                                                                       "Stage": route.stage},
                                response.status, latency_ms, http_api=False)
        return response

    def _api_name(self, api_id: str) -> str:
        """A REST API's name (its metrics' ApiName dimension), from moto's model (the id if it has none)."""
        api = apigateway_backends[self.account_id][self.clients.region].apis.get(api_id)
        return str(api.name) if api is not None else api_id

    @staticmethod
    def _missing_token() -> HttpResponse:
        return HttpResponse.json(403, {"message": "Missing Authentication Token"},
                                 [("x-amzn-ErrorType", "MissingAuthenticationTokenException")])

    def _stage(self, route: _Route) -> dict[str, Any] | None:
        backend = apigateway_backends[self.account_id][self.clients.region]
        try:
            return backend.get_stage(route.api_id, route.stage).to_json()
        except (RestAPINotFound, StageNotFoundException):
            return None

    def _cached(self, route: _Route, stage: dict[str, Any], kind: str, key: str, read: Any) -> Any:
        """``read()`` once per deployment of the stage (every time when moto names no deployment)."""
        deployment = stage.get("deploymentId")
        if not deployment:
            return read()
        cache_key = (route.api_id, deployment, kind, key)
        with self._deployed_lock:
            if cache_key in self._deployed:
                return self._deployed[cache_key]
        value = read()
        with self._deployed_lock:
            if len(self._deployed) > 10_000:
                self._deployed.clear()
            self._deployed[cache_key] = value
        return value

    def _resources(self, route: _Route, stage: dict[str, Any]) -> list[dict[str, Any]]:
        client = self.clients.client("apigateway")
        return self._cached(route, stage, "resources", "", lambda: client.get_resources(
            restApiId=route.api_id, limit=500, embed=["methods"])["items"])

    def _gateway_error(self, api_id: str, response_type: str, status: int, message: str,
                       context: dict[str, Any]) -> HttpResponse:
        """The API's own gateway response for this error type when it defines one, else AWS's default."""
        try:
            custom = self.clients.client("apigateway").get_gateway_response(
                restApiId=api_id, responseType=response_type)
        except ClientError:
            custom = {}
        template = (custom.get("responseTemplates") or {}).get("application/json")
        if not template:
            return HttpResponse.json(status, {"message": message})
        values = {**context, "error.message": message, "error.messageString": json.dumps(message),
                  "error.validationErrorString": context.get("error.validationErrorString", message),
                  "error.responseType": response_type}
        body = _CONTEXT_VAR.sub(lambda m: str(values.get(m.group(1), "")), template)
        headers = [(k.rsplit(".", 1)[-1], v.strip("'"))
                   for k, v in (custom.get("responseParameters") or {}).items()
                   if k.startswith("gatewayresponse.header.")]
        return HttpResponse(int(custom.get("statusCode") or status), body.encode(),
                            [("Content-Type", "application/json"), *headers])

    def _serve(self, request: HttpRequest, route: _Route, stage: dict[str, Any], request_id: str,
               context: dict[str, Any]) -> HttpResponse:
        candidates = []
        for resource in self._resources(route, stage):
            params = match_resource(resource["path"], route.path)
            if params is not None:
                candidates.append((path_specificity(resource["path"]), resource, params))
        if not candidates:
            return self._missing_token()
        _, resource, path_params = max(candidates, key=lambda c: c[0])
        methods = resource.get("resourceMethods") or {}
        method_key = request.method if request.method in methods else ("ANY" if "ANY" in methods else None)
        if method_key is None:
            return self._missing_token()
        context.update(resourceId=resource["id"], resourcePath=resource["path"])
        client = self.clients.client("apigateway")
        method = self._cached(route, stage, "method", f"{resource['id']} {method_key}", lambda: client.get_method(
            restApiId=route.api_id, resourceId=resource["id"], httpMethod=method_key))
        if method.get("authorizationType") == "AWS_IAM":
            refusal = self._iam_refusal(request, f"arn:aws:execute-api:{self.clients.region}:{self.account_id}:"
                                                 f"{route.api_id}/{route.stage}/{request.method}{route.path}")
            if refusal is not None:
                return refusal
        if len(request.body) > MAX_BODY_BYTES:
            return HttpResponse.json(413, {"message": "Request Too Long"})
        query = parse_qsl(request.query, keep_blank_values=True)
        rejection = self._validate(request, route, stage, method, path_params, query, context)
        if rejection:
            return rejection
        integration = method.get("methodIntegration") or {}
        if integration.get("type") == "HTTP_PROXY":
            return self.backends.forward(request, integration, path_params)
        function = _FUNCTION_IN_URI.search(integration.get("uri") or "")
        if integration.get("type") != "AWS_PROXY" or not function:
            log.warning("front door: %s %s has no AWS_PROXY integration", method_key, resource["path"])
            return HttpResponse.json(500, {"message": "Internal server error"})
        source_arn = (f"arn:aws:execute-api:{self.clients.region}:{self.account_id}:{route.api_id}/{route.stage}/"
                      f"{request.method}{resource['path']}")
        if self.guard is not None and not self.guard.may_deliver("apigateway.amazonaws.com", function["arn"],
                                                                 source_arn, self.account_id):
            # API Gateway: "Execution failed due to configuration error: Invalid permissions on Lambda function"
            log.warning("front door: %s may not invoke %s", source_arn, function["arn"])
            return HttpResponse.json(500, {"message": "Internal server error"})
        event = self._proxy_event(request, route, stage, resource, path_params, query, request_id, context)
        outcome = self.invoker.invoke(function["arn"], event)
        return self._translate(outcome.function_error, outcome.payload)

    def _iam_refusal(self, request: HttpRequest, resource: str) -> HttpResponse | None:
        """A method with IAM authorization: the caller signs for ``execute-api`` and its identity
        policies allow ``execute-api:Invoke`` on ``<api>/<stage>/<METHOD>/<path>``; refusals as a REST
        API answers them (403: "Missing Authentication Token" unsigned, "The security token included
        in the request is invalid." for an unknown key, the AccessDenied ``Message`` otherwise). The
        API's resource policy is not evaluated (docs/emulation-gaps.md)."""
        if self.guard is None:
            return None
        verdict = self.guard.execute_api_caller({k.lower(): v for k, v in request.headers}, request.query,
                                                "execute-api:Invoke", resource, self.clients.region)
        if verdict.outcome == "unsigned":
            return self._missing_token()
        if verdict.outcome == "unknown":
            return HttpResponse.json(403, {"message": "The security token included in the request is invalid."},
                                     [("x-amzn-ErrorType", "UnrecognizedClientException")])
        if verdict.outcome == "denied":
            log.info("front door: %s", verdict.denial)
            return HttpResponse.json(403, {"Message": verdict.denial}, [("x-amzn-ErrorType", "AccessDeniedException")])
        return None

    def _validate(self, request: HttpRequest, route: _Route, stage: dict[str, Any], method: dict[str, Any],
                  path_params: dict[str, str], query: list[tuple[str, str]],
                  context: dict[str, Any]) -> HttpResponse | None:
        validator_id = method.get("requestValidatorId")
        if not validator_id:
            return None
        validator = self._cached(route, stage, "validator", validator_id, lambda: self.clients.client(
            "apigateway").get_request_validator(restApiId=route.api_id, requestValidatorId=validator_id))
        if validator.get("validateRequestParameters"):
            present = {
                "header": {k.lower() for k, _ in request.headers},
                "querystring": {k for k, _ in query},
                "path": set(path_params),
            }
            missing = []
            for name, required in (method.get("requestParameters") or {}).items():
                _, _, location, param = name.split(".", 3)
                key = param.lower() if location == "header" else param
                if required and key not in present.get(location, set()):
                    missing.append(param)
            if missing:
                return self._gateway_error(route.api_id, "BAD_REQUEST_PARAMETERS", 400,
                                           f"Missing required request parameters: [{', '.join(missing)}]", context)
        if validator.get("validateRequestBody"):
            schema = self._request_schema(route, stage, method, request.header("Content-Type"))
            if schema is not None:
                error = _schema_error(schema, request.body)
                if error:
                    context["error.validationErrorString"] = f"[{error}]"
                    return self._gateway_error(route.api_id, "BAD_REQUEST_BODY", 400, "Invalid request body", context)
        return None

    def _request_schema(self, route: _Route, stage: dict[str, Any], method: dict[str, Any],
                        content_type: str | None) -> dict[str, Any] | None:
        models = method.get("requestModels") or {}
        media = (content_type or "application/json").split(";")[0].strip().lower()
        name = models.get(media) or models.get("$default")
        if not name:
            return None
        model = self._cached(route, stage, "model", name, lambda: self.clients.client("apigateway").get_model(
            restApiId=route.api_id, modelName=name))
        return json.loads(model["schema"]) if model.get("schema") else None

    def _proxy_event(self, request: HttpRequest, route: _Route, stage: dict[str, Any], resource: dict[str, Any],
                     path_params: dict[str, str], query: list[tuple[str, str]], request_id: str,
                     context: dict[str, Any]) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for key, value in request.headers:
            headers[key] = value
            multi_headers.setdefault(key, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for key, value in query:
            multi_query.setdefault(key, []).append(value)
        try:
            body: str | None = request.body.decode() if request.body else None
            is_base64 = False
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(request.body).decode(), True
        now = time.time()
        host = request.header("Host") or "127.0.0.1"
        return {
            "resource": resource["path"],
            "path": route.path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": stage.get("variables") or None,
            "requestContext": {
                "resourceId": resource["id"], "resourcePath": resource["path"], "httpMethod": request.method,
                "extendedRequestId": request_id, "requestTime": context["requestTime"],
                "path": f"/{route.stage}{route.path}", "accountId": self.account_id, "protocol": "HTTP/1.1",
                "stage": route.stage, "domainPrefix": host.split(".")[0], "requestTimeEpoch": int(now * 1000),
                "requestId": request_id, "domainName": host, "apiId": route.api_id,
                "identity": {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent"),
                             "accountId": None, "caller": None, "user": None, "userArn": None,
                             "cognitoIdentityId": None, "cognitoIdentityPoolId": None, "accessKey": None},
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    @staticmethod
    def _translate(function_error: bool, payload: Any) -> HttpResponse:
        """A Lambda proxy response as an HTTP response; anything malformed is 502, as in API Gateway."""
        if function_error or not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
            return HttpResponse.json(502, {"message": "Internal server error"})
        body = payload.get("body") or ""
        if not isinstance(body, str):
            return HttpResponse.json(502, {"message": "Internal server error"})
        raw = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
        headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
        for key, values in (payload.get("multiValueHeaders") or {}).items():
            headers += [(str(key), str(v)) for v in values]
        return HttpResponse(payload["statusCode"], raw, headers)

    def _access_log(self, route: _Route, stage: dict[str, Any], context: dict[str, Any]) -> None:
        settings = stage.get("accessLogSettings") or {}
        arn, fmt = settings.get("destinationArn"), settings.get("format")
        if not arn or not fmt:
            return
        line = _CONTEXT_VAR.sub(lambda m: str(context.get(m.group(1), "-")), fmt)
        self._write_log(arn, f"sandbox-{route.api_id}-{route.stage}", line)

    def _write_log(self, arn: str, stream: str, line: str) -> None:
        """One access-log line into the log group ``arn`` names (moto's model in this process)."""
        group = arn.split(":log-group:", 1)[-1].removesuffix(":*")
        logs = logs_backends[self.account_id][arn.split(":")[3]]
        with self._logs_lock:  # moto's log streams are not thread-safe
            if group not in logs.groups:
                log.warning("front door: access log group %s does not exist", group)
                return
            logs.ensure_log_stream(group, stream)
            logs.put_log_events(group, stream, [{"timestamp": int(time.time() * 1000), "message": line}])


def _schema_error(schema: dict[str, Any], body: bytes) -> str | None:
    """Why the body does not satisfy the model's schema (draft 4), or None when it does."""
    try:
        document = json.loads(body or b"null", parse_constant=_not_json)
        error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(document))
    except ValueError as exc:  # not JSON, invalid UTF-8, NaN/Infinity, an integer past Python's digit limit
        return f"body is not JSON: {exc}"
    except RecursionError:
        return "body is not JSON: nested too deeply"
    return error.message if error else None


def _not_json(constant: str) -> None:
    """``json.loads`` accepts NaN, Infinity and -Infinity; JSON (RFC 8259) does not."""
    raise ValueError(f"{constant} is not a JSON value")
