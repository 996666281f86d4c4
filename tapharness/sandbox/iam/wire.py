"""An AWS API request, as it arrives over HTTP, read back into (service, operation, parameters).

Generic over protocols, driven by botocore's own service models (the ones the SDK used to
write the request): the SigV4 credential scope names the signing service; JSON services are
told apart by ``X-Amz-Target``, query services by ``Action``, REST services by matching the
method, path and query against each operation's ``requestUri`` (the most specific match
wins), smithy RPC v2 by its ``/service/<S>/operation/<Op>`` path. Parameters come back under
their API member names: URI labels, query strings and headers by their location names, plus
the top-level members of a JSON body or the fields of a query-protocol form.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

import botocore
import botocore.session
from botocore.model import OperationModel, ServiceModel

from tapharness.toolchain import CACHE

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Signature:
    """Who signed a request (SigV4 credential scope): the key, the region and the signing service."""

    access_key: str
    region: str
    signer: str


def signature(headers: dict[str, str], query_string: str) -> Signature | None:
    """The SigV4 credential of a request (``Authorization`` header or presigned query); None if unsigned."""
    credential = _CREDENTIAL.search(headers.get("authorization", ""))
    if credential:
        return Signature(*credential.groups())
    if "X-Amz-Credential" not in query_string:
        return None
    values = parse_qs(query_string).get("X-Amz-Credential")
    if not values:
        return None
    access_key, _, region, signer, _ = values[0].split("/")
    return Signature(access_key, region, signer)


@dataclass
class ApiCall:
    """One request to the sandbox endpoint, decoded."""

    service: str          # botocore service name ("dynamodbstreams")
    signing_name: str     # the SigV4 service, which is the IAM prefix in almost every case
    operation: str        # "GetRecords"
    region: str
    access_key: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(name: str) -> ServiceModel:
    return _session().get_service_model(name)


_INDEX_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _by_signing_name() -> dict[str, tuple[str, ...]]:
    """Every botocore service, by signing name.

    Reading every model takes seconds, so the index is kept on disk per botocore version
    (``$TAPSTACK_CACHE/botocore-signers-<version>.json``); ``warm()`` builds it off the request path.
    """
    with _INDEX_LOCK:
        return _load_or_build_index()


def _load_or_build_index() -> dict[str, tuple[str, ...]]:
    path = CACHE / f"botocore-signers-{botocore.__version__}.json"
    try:
        return {k: tuple(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        pass
    index: dict[str, list[str]] = {}
    for name in _session().get_available_services():
        index.setdefault(_session().get_service_model(name).signing_name, []).append(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, sort_keys=True))
    tmp.replace(path)
    return {k: tuple(v) for k, v in index.items()}


def warm() -> None:
    """Load the signing-name index (call in a background thread when a sandbox starts)."""
    _by_signing_name()


def candidate_services(signing_name: str) -> tuple[str, ...]:
    """Services signed as ``signing_name``: the one of that name first (the common case needs
    no index), then the others that share the signer (``sagemaker-runtime``, ``dynamodbstreams``)."""
    first = (signing_name,) if signing_name in _available() else ()
    return first + tuple(s for s in _by_signing_name().get(signing_name, ()) if s not in first)


@lru_cache(maxsize=1)
def _available() -> frozenset[str]:
    return frozenset(_session().get_available_services())


@dataclass(frozen=True)
class _Route:
    operation: OperationModel
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]
    headers: tuple[str, ...]  # required members sent as headers (CopyObject's x-amz-copy-source)
    score: tuple[int, int]


def _group(label: str) -> str:
    """A URI label as a regex group name (``Key+`` → ``Key``, ``Bucket-Name`` → ``Bucket_Name``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", label.rstrip("+"))


def _route(operation: OperationModel) -> _Route:
    uri = operation.http["requestUri"]
    path, _, query = uri.partition("?")
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            pattern += f"(?P<{_group(piece[1:-1])}>{'.+' if piece.endswith('+}') else '[^/]+'})"
        else:
            pattern += re.escape(piece)
    if pattern != "/":
        pattern = pattern.rstrip("/") + "/?"
    required = tuple((key, value if sep else None)
                     for key, sep, value in (part.partition("=") for part in query.split("&") if part))
    literal = len(re.sub(r"\{[^}]+\}", "", path))
    shape = operation.input_shape
    members = shape.members if shape is not None else {}
    required_members = shape.required_members if shape is not None else []
    query_required = tuple((members[m].serialization.get("name", m), None) for m in required_members
                           if members[m].serialization.get("location") == "querystring")
    headers = tuple(members[m].serialization.get("name", m).lower() for m in required_members
                    if members[m].serialization.get("location") == "header")
    required += tuple(q for q in query_required if q[0] not in {k for k, _ in required})
    return _Route(operation, operation.http["method"], re.compile(pattern), required, headers,
                  (len(required) + len(headers), literal))


@cache
def _routes(service: str) -> tuple[_Route, ...]:
    model = service_model(service)
    return tuple(_route(model.operation_model(name)) for name in model.operation_names)


@cache
def _by_target(service: str) -> str | None:
    return service_model(service).metadata.get("targetPrefix")


def _rest_operation(service: str, method: str, path: str, query: dict[str, list[str]],
                    headers: dict[str, str]) -> tuple[OperationModel, dict[str, str]] | None:
    best: tuple[tuple[int, int], _Route, dict[str, str]] | None = None
    for route in _routes(service):
        if route.method != method:
            continue
        match = route.path.fullmatch(path)
        if not match:
            continue
        if any(key not in query or (value is not None and value not in query[key]) for key, value in route.query):
            continue
        if any(name not in headers for name in route.headers):
            continue
        if best is None or route.score > best[0]:
            best = (route.score, route, match.groupdict())
    if best is None:
        return None
    return best[1].operation, {k: unquote(v) for k, v in best[2].items()}


def _rest_params(operation: OperationModel, labels: dict[str, str], query: dict[str, list[str]],
                 headers: dict[str, str], body: bytes, protocol: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    shape = operation.input_shape
    if shape is None:
        return params
    json_body: dict[str, Any] = {}
    if protocol == "rest-json" and body[:1] == b"{":
        try:
            json_body = json.loads(body)
        except ValueError:
            json_body = {}
    for member, member_shape in shape.members.items():
        location = member_shape.serialization.get("location")
        wire_name = member_shape.serialization.get("name", member)
        if location == "uri":
            if _group(wire_name) in labels:
                params[member] = labels[_group(wire_name)]
        elif location == "querystring":
            if wire_name in query:
                params[member] = query[wire_name][0]
        elif location == "header":
            if wire_name.lower() in headers:
                params[member] = headers[wire_name.lower()]
        elif wire_name in json_body:
            params[member] = json_body[wire_name]
    return params


def decode(method: str, path: str, query_string: str, headers: dict[str, str], body: bytes,
           signed: Signature) -> ApiCall:
    """The API call an HTTP request signed as ``signed`` makes (``headers`` with lower-case names).

    A request no model of the signing service recognises comes back with an empty operation.
    """
    access_key, region, signer = signed.access_key, signed.region, signed.signer
    query = parse_qs(query_string, keep_blank_values=True)
    target = headers.get("x-amz-target", "")
    form: dict[str, list[str]] = {}
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        form = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    for service in candidate_services(signer):
        model = service_model(service)
        protocol = model.protocol
        if target and (protocol == "json" or "json" in model.metadata.get("protocols", [])):
            prefix, _, operation = target.partition(".")
            if prefix != _by_target(service):
                continue
            try:
                params = json.loads(body) if body else {}
            except ValueError:
                params = {}
            return ApiCall(service, signer, operation, region, access_key,
                           params if isinstance(params, dict) else {}, headers, body)
        if protocol in ("query", "ec2") and ("Action" in form or "Action" in query):
            fields = {**{k: v[0] for k, v in query.items()}, **{k: v[0] for k, v in form.items()}}
            return ApiCall(service, signer, fields.pop("Action"), region, access_key, fields, headers, body)
        rpc = re.fullmatch(r"/service/[^/]+/operation/([^/]+)", path)
        if rpc and "smithy-rpc-v2-cbor" in model.metadata.get("protocols", [protocol]):
            return ApiCall(service, signer, rpc.group(1), region, access_key, {}, headers, body)
        if protocol in ("rest-json", "rest-xml"):
            found = _rest_operation(service, method, path, query, headers)
            if found is None:
                continue
            operation_model, labels = found
            params = _rest_params(operation_model, labels, query, headers, body, protocol)
            return ApiCall(service, signer, operation_model.name, region, access_key, params, headers, body)
    return ApiCall("", signer, "", region, access_key, {}, headers, body)
