"""Application Load Balancers served over HTTP (moto stores them but does not serve them).

A stack's ALB URL ``http://<dns name>[:port]/<path>`` maps to
``http://127.0.0.1:<gateway port>/elb/<dns name>:<port>/<path>`` (``local_alb_url``); requests
whose Host header is the ALB's DNS name are served too.

Per request, from moto's ELBv2 model in this process: the load balancer and its listener on the
port (none → the connection is refused by AWS; here 503), then the listener's rules in priority
order, the first whose conditions all hold (``path-pattern`` with ``*`` and ``?``,
``host-header``, ``http-request-method``, ``http-header``, ``query-string``, ``source-ip``), else
the default action. Actions: ``fixed-response``; ``redirect`` (``#{host}``, ``#{port}``,
``#{path}``, ``#{query}``, ``#{protocol}`` kept); ``forward`` to a target group of type
``lambda``: its registered function is invoked as the Lambda service invokes it, once the
function's resource policy lets ``elasticloadbalancing.amazonaws.com`` in for that target group,
with the ALB event (multi-value headers and query parameters when the group's
``lambda.multi_value_headers.enabled`` attribute is on). Answers as ALBs give them: ``503`` when
the group has no target, ``502`` on a function error, a refused invocation or a malformed
response. Not emulated: weighted forwards across groups (the first group takes every request),
authentication actions, instance and IP targets, TLS listeners' certificates.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import threading
import time
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup, elbv2_backends

from tapharness.sandbox import metrics
from tapharness.sandbox.clients import AwsClients, Invoker
from tapharness.sandbox.web import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from tapharness.sandbox.iam.sessions import ServiceGuard

log = logging.getLogger("tapharness.sandbox.alb")
# How long the request's target took to answer (None: no target answered), for its metrics.
_TARGET = threading.local()

_ALB_URL = re.compile(r"^(?P<scheme>https?)://(?P<host>[a-z0-9.-]+\.elb\.amazonaws\.com)(?::(?P<port>\d+))?(?P<rest>/.*)?$")
_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found", 502: "Bad Gateway",
            503: "Service Unavailable"}


def local_alb_url(url: str, gateway_url: str) -> str:
    """The sandbox URL for a stack's ``http(s)://<alb dns name>[:port]/<path>``."""
    match = _ALB_URL.match(url)
    if not match:
        raise ValueError(f"not an ALB URL: {url}")
    port = match["port"] or ("443" if match["scheme"] == "https" else "80")
    return f"{gateway_url.rstrip('/')}/elb/{match['host']}:{port}{match['rest'] or ''}"


def _text(status: int, body: str = "", content_type: str = "text/html") -> HttpResponse:
    return HttpResponse(status, body.encode(), [("Content-Type", content_type)])


def _error(status: int) -> HttpResponse:
    reason = _REASONS.get(status, "")
    return _text(status, f"<html><head><title>{status} {reason}</title></head><body><center><h1>{status} "
                         f"{reason}</h1></center></body></html>")


def _path_matches(pattern: str, path: str) -> bool:
    return fnmatchcase(path, pattern.replace("[", "[[]"))


def condition_holds(condition: dict[str, Any], request: HttpRequest, path: str) -> bool:
    """One listener-rule condition (moto's stored form of the API's) against a request."""
    field = condition.get("Field")

    def values(config: str) -> list[Any]:
        return list((condition.get(config) or {}).get("Values") or condition.get("Values") or [])

    if field == "path-pattern":
        return any(_path_matches(v, path) for v in values("PathPatternConfig"))
    if field == "host-header":
        host = (request.header("Host") or "").split(":")[0].lower()
        return any(fnmatchcase(host, v.lower()) for v in values("HostHeaderConfig"))
    if field == "http-request-method":
        return request.method in values("HttpRequestMethodConfig")
    if field == "http-header":
        config = condition.get("HttpHeaderConfig") or {}
        found = [v for k, v in request.headers if k.lower() == str(config.get("HttpHeaderName", "")).lower()]
        return any(fnmatchcase(f.lower(), str(v).lower()) for f in found for v in config.get("Values") or [])
    if field == "query-string":
        query = parse_qsl(request.query, keep_blank_values=True)
        return any(any((pair.get("Key") is None or fnmatchcase(k, pair["Key"])) and fnmatchcase(v, pair["Value"])
                       for k, v in query) for pair in values("QueryStringConfig"))
    if field == "source-ip":
        address = ipaddress.ip_address(request.source_ip)
        return any(address in ipaddress.ip_network(v, strict=False) for v in values("SourceIpConfig"))
    log.warning("alb: unknown condition field %r never holds", field)
    return False


def alb_event(request: HttpRequest, path: str, target_group_arn: str, multi_value: bool) -> dict[str, Any]:
    """The event an ALB sends a Lambda target."""
    try:
        body, is_base64 = request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(request.body).decode(), True
    query = parse_qsl(request.query, keep_blank_values=True)
    event: dict[str, Any] = {"requestContext": {"elb": {"targetGroupArn": target_group_arn}},
                             "httpMethod": request.method, "path": path, "body": body, "isBase64Encoded": is_base64}
    if multi_value:
        headers: dict[str, list[str]] = {}
        for key, value in request.headers:
            headers.setdefault(key.lower(), []).append(value)
        parameters: dict[str, list[str]] = {}
        for key, value in query:
            parameters.setdefault(quote(key), []).append(quote(value))
        event.update(multiValueHeaders=headers, multiValueQueryStringParameters=parameters)
    else:
        event.update(headers={key.lower(): value for key, value in request.headers},
                     queryStringParameters={quote(key): quote(value) for key, value in query})
    return event


def translate(function_error: bool, payload: Any) -> HttpResponse:
    """A Lambda target's answer as the ALB's HTTP response (502 when it is not one)."""
    if function_error or not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        return _error(502)
    body = payload.get("body") or ""
    if not isinstance(body, str):
        return _error(502)
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
    for key, values in (payload.get("multiValueHeaders") or {}).items():
        headers += [(str(key), str(v)) for v in values]
    return HttpResponse(payload["statusCode"], raw, headers)


class AlbDoor:
    """Serves the sandbox's Application Load Balancers, invoking Lambda targets through Lambda."""

    def __init__(self, clients: AwsClients, guard: ServiceGuard | None, account_id: str, invoker: Invoker) -> None:
        self.clients = clients
        self.guard = guard
        self.account_id = account_id
        self.invoker = invoker

    def _backend(self) -> Any:
        return elbv2_backends[self.account_id][self.clients.region]

    def _balancer(self, dns_name: str) -> FakeLoadBalancer | None:
        return next((lb for lb in self._backend().load_balancers.values() if lb.dns_name.lower() == dns_name.lower()),
                    None)

    def route_for(self, host: str, path: str) -> tuple[FakeLoadBalancer, int, str] | None:
        """(load balancer, port, path) of a request: by the ``/elb/<dns>:<port>`` prefix or by Host."""
        if path.startswith("/elb/"):
            target, _, rest = path[len("/elb/"):].partition("/")
            dns_name, _, port = target.partition(":")
            balancer = self._balancer(dns_name)
            return (balancer, int(port or 80), "/" + rest) if balancer else None
        name, _, port = host.partition(":")
        balancer = self._balancer(name) if name.endswith(".elb.amazonaws.com") else None
        return (balancer, int(port or 80), path) if balancer else None

    def handle(self, request: HttpRequest, balancer: FakeLoadBalancer, port: int, path: str) -> HttpResponse:
        _TARGET.seconds = None
        response = self._handle(request, balancer, port, path)
        metrics.alb_request(self.account_id, self.clients.region, balancer.arn, response.status, _TARGET.seconds)
        return response

    def _handle(self, request: HttpRequest, balancer: FakeLoadBalancer, port: int, path: str) -> HttpResponse:
        try:
            listener = next((li for li in balancer.listeners.values() if int(li.port) == port), None)
            if listener is None:
                return _error(503)
            rules = sorted(listener.rules.values(), key=lambda r: (r.priority == "default", int(r.priority)
                                                                    if r.priority != "default" else 0))
            for rule in rules:
                if all(condition_holds(c, request, path) for c in rule.conditions):
                    return self._act(rule.actions[0], request, port, path)
            return _error(503)
        except Exception:  # a sandbox fault answers as an ALB's own do, never a dropped connection
            log.exception("alb: %s %s failed", request.method, request.path)
            return _error(502)

    def _act(self, action: Any, request: HttpRequest, port: int, path: str) -> HttpResponse:
        data = action.data
        if action.type == "fixed-response":
            config = data.get("FixedResponseConfig") or {}
            return _text(int(config.get("StatusCode", 200)), config.get("MessageBody") or "",
                         config.get("ContentType") or "text/plain")
        if action.type == "redirect":
            return self._redirect(data.get("RedirectConfig") or {}, request, port, path)
        if action.type == "forward":
            groups = [g["TargetGroupArn"] for g in (data.get("ForwardConfig") or {}).get("TargetGroups", [])]
            arn = data.get("TargetGroupArn") or (groups[0] if groups else None)
            group = self._backend().target_groups.get(arn) if arn else None
            return self._forward(group, request, path) if group else _error(503)
        log.warning("alb: action %r is not emulated", action.type)
        return _error(502)

    @staticmethod
    def _redirect(config: dict[str, Any], request: HttpRequest, port: int, path: str) -> HttpResponse:
        host = (request.header("Host") or "").split(":")[0]
        values = {"#{host}": host, "#{port}": str(port), "#{path}": path.lstrip("/"), "#{query}": request.query,
                  "#{protocol}": "http"}

        def fill(text: str) -> str:
            for key, value in values.items():
                text = text.replace(key, value)
            return text

        protocol = fill(config.get("Protocol", "#{protocol}")).lower()
        location = (f"{protocol}://{fill(config.get('Host', '#{host}'))}:{fill(config.get('Port', '#{port}'))}"
                    f"/{fill(config.get('Path', '/#{path}')).lstrip('/')}")
        query = fill(config.get("Query", "#{query}"))
        status = 301 if config.get("StatusCode") == "HTTP_301" else 302
        return HttpResponse(status, b"", [("Location", location + (f"?{query}" if query else ""))])

    def _forward(self, group: FakeTargetGroup, request: HttpRequest, path: str) -> HttpResponse:
        if group.target_type != "lambda":
            log.warning("alb: target group %s of type %s is not emulated", group.name, group.target_type)
            return _error(502)
        if not group.targets:
            return _error(503)
        function_arn = next(iter(group.targets))
        if self.guard is not None and not self.guard.may_deliver("elasticloadbalancing.amazonaws.com", function_arn,
                                                                 group.arn, self.account_id):
            log.warning("alb: target group %s may not invoke %s", group.name, function_arn)
            return _error(502)
        multi_value = group.attributes.get("lambda.multi_value_headers.enabled") == "true"
        started = time.monotonic()
        outcome = self.invoker.invoke(function_arn, alb_event(request, path, group.arn, multi_value))
        if not outcome.function_error:  # the target answered (a function error is the balancer's 502)
            _TARGET.seconds = time.monotonic() - started
        return translate(outcome.function_error, outcome.payload)
