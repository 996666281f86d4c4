"""IAM policy documents evaluated as AWS does (pure: no moto, no I/O).

``evaluate(request, identity=..., resource=..., boundary=...)`` follows AWS's
same-account evaluation logic: an explicit ``Deny`` anywhere wins; a resource policy that
names the principal (its role, its session, or ``*``) allows on its own; a resource policy
that names only the account delegates to the identity policies; otherwise an identity
``Allow`` is needed, within the permissions boundary when the role has one (a resource policy
naming the role, not the session, is within the boundary too, as AWS rules). KMS keys are the
exception AWS makes: the key policy must allow, itself or by delegating to the account.

Statements: ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal``/
``NotPrincipal``, and ``Condition`` with the String*, Numeric*, Date*, Bool, Arn*, IpAddress,
Binary and Null operators, ``...IfExists``, and the ``ForAnyValue:``/``ForAllValues:`` set
qualifiers. A condition key missing from the request context does not match (negated
operators then hold, as in AWS); an operator AWS does not define is a ``PolicyError``, which
the caller turns into a denial: AWS would never have stored that policy.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import eq, ge, gt, le, lt
from typing import Any

Context = dict[str, list[str]]


class PolicyError(ValueError):
    """A policy document AWS would have refused (unknown operator, malformed statement)."""


@dataclass(frozen=True)
class Principal:
    """Who makes a request: an IAM role session, an IAM user, or an AWS service."""

    arn: str
    account: str
    role_arn: str | None = None
    service: str | None = None

    @property
    def identity_arns(self) -> tuple[str, ...]:
        """The ARNs a resource policy's ``Principal: {"AWS": ...}`` may name to mean this caller."""
        return tuple(a for a in (self.arn, self.role_arn) if a)


@dataclass(frozen=True)
class AuthzRequest:
    """One (action, resource) pair a call needs, with its request context."""

    principal: Principal
    action: str
    resource: str
    context: Context = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome, and which statement decided it (``policy#Sid``) or why none did."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class PolicySource:
    """A policy document and where it came from (for the report)."""

    name: str
    document: str | dict[str, Any]


# --- matching --------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """``*`` any run of characters, ``?`` one character; nothing else is special."""
    escaped = pattern.replace("[", "[[]")
    return bool(_wildcard(escaped, ignore_case).match(value))


def _substitute(pattern: str, context: Context) -> str | None:
    """Policy variables (``${aws:username}``, ``${*}``); None when a variable has no value."""
    if "${" not in pattern:
        return pattern
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name
        values = context.get(name.lower())
        if not values:
            missing = True
            return ""
        return values[0]

    result = _VARIABLE.sub(value, pattern)
    return None if missing else result


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _action_matches(patterns: list[str], action: str) -> bool:
    return any(wildcard_match(p, action, ignore_case=True) for p in patterns)


def _resource_matches(patterns: list[str], resource: str, context: Context) -> bool:
    for pattern in patterns:
        concrete = _substitute(pattern, context)
        if concrete is not None and wildcard_match(concrete, resource):
            return True
    return False


def _account_of(principal_value: str) -> str | None:
    if re.fullmatch(r"\d{12}", principal_value):
        return principal_value
    match = re.fullmatch(r"arn:aws[\w-]*:iam::(\d{12}):root", principal_value)
    return match.group(1) if match else None


def _principal_match(block: Any, principal: Principal) -> str | None:
    """How a ``Principal`` block names the caller: "direct" (everyone, the session or the user
    itself), "role" (the session's role), "account" (delegation) or None."""
    if block == "*":
        return "direct"
    if not isinstance(block, dict):
        raise PolicyError(f"malformed Principal {block!r}")
    if principal.service:
        return "direct" if principal.service in as_list(block.get("Service")) else None
    found = None
    for value in as_list(block.get("AWS")):
        if value == "*" or value == principal.arn:
            return "direct"
        if principal.role_arn and value == principal.role_arn:
            found = "role"
        elif _account_of(value) == principal.account and found is None:
            found = "account"
    return found


def _not_principal_exempts(block: Any, principal: Principal) -> bool:
    """Whether ``NotPrincipal`` spares the caller. "If an assumed-role user ... is being evaluated,
    AWS might validate the account first, then the role, and then the assumed-role user"
    (IAM, NotPrincipal): a session is spared only when its session ARN, its role and its account
    are all named, a user when the user and the account are."""
    if block == "*" or not isinstance(block, dict):
        raise PolicyError(f"malformed NotPrincipal {block!r}")
    if principal.service:
        return principal.service in as_list(block.get("Service"))
    named = set(as_list(block.get("AWS")))
    account_named = any(_account_of(value) == principal.account for value in named)
    return account_named and all(arn in named for arn in principal.identity_arns)


# --- conditions ------------------------------------------------------------------------


def _parse_date(text: str) -> float:
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def _string_equals(actual: str, expected: str) -> bool:
    return actual == expected


def _string_equals_ignore_case(actual: str, expected: str) -> bool:
    return actual.lower() == expected.lower()


def _string_like(actual: str, expected: str) -> bool:
    return wildcard_match(expected, actual)


def _compare(parse: Callable[[str], float], compare: Callable[[float, float], bool]) -> Any:
    def check(actual: str, expected: str) -> bool:
        try:
            return compare(parse(actual), parse(expected))
        except ValueError:
            return False
    return check


def _bool(actual: str, expected: str) -> bool:
    return actual.lower() == str(expected).lower()


def _arn_like(actual: str, expected: str) -> bool:
    # ARN operators compare the six colon-separated parts one by one, wildcards within each.
    a_parts, e_parts = actual.split(":", 5), expected.split(":", 5)
    if len(a_parts) != 6 or len(e_parts) != 6:
        return False
    return all(wildcard_match(e, a) for a, e in zip(a_parts, e_parts, strict=True))


def _ip_address(actual: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


def _binary_equals(actual: str, expected: str) -> bool:
    try:
        return base64.b64decode(actual) == base64.b64decode(expected)
    except ValueError:
        return False


# operator -> (value test, negated)
_OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "NumericEquals": (_compare(float, eq), False),
    "NumericNotEquals": (_compare(float, eq), True),
    "NumericLessThan": (_compare(float, lt), False),
    "NumericLessThanEquals": (_compare(float, le), False),
    "NumericGreaterThan": (_compare(float, gt), False),
    "NumericGreaterThanEquals": (_compare(float, ge), False),
    "DateEquals": (_compare(_parse_date, eq), False),
    "DateNotEquals": (_compare(_parse_date, eq), True),
    "DateLessThan": (_compare(_parse_date, lt), False),
    "DateLessThanEquals": (_compare(_parse_date, le), False),
    "DateGreaterThan": (_compare(_parse_date, gt), False),
    "DateGreaterThanEquals": (_compare(_parse_date, ge), False),
    "Bool": (_bool, False),
    "BinaryEquals": (_binary_equals, False),
    "IpAddress": (_ip_address, False),
    "NotIpAddress": (_ip_address, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
}


def _condition_holds(operator: str, key: str, expected_raw: Any, context: Context) -> bool:
    qualifier = None
    if ":" in operator and operator.split(":", 1)[0] in ("ForAnyValue", "ForAllValues"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists") and operator != "IfExists"
    base = operator[: -len("IfExists")] if if_exists else operator
    actual = context.get(key.lower())
    expected = [str(v).lower() if isinstance(v, bool) else str(v) for v in as_list(expected_raw)]
    if base == "Null":
        if if_exists or qualifier:
            raise PolicyError(f"condition operator {operator} is not defined")
        is_missing = not actual
        return any((e.lower() == "true") == is_missing for e in expected)
    if base not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not defined by IAM")
    test, negated = _OPERATORS[base]
    if not actual:
        # "ForAnyValue ... For no matching key or a null dataset, the condition returns false",
        # whatever the operator (IAM, multivalued context keys); ForAllValues returns true.
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return if_exists
        return if_exists or negated
    expected = [v for v in (_substitute(e, context) for e in expected) if v is not None]

    def one(value: str) -> bool:
        hit = any(test(value, e) for e in expected)
        return not hit if negated else hit

    # Without a set qualifier a multivalued key matches when any of its values does.
    return all(map(one, actual)) if qualifier == "ForAllValues" else any(map(one, actual))


def _conditions_hold(block: Any, context: Context) -> bool:
    if not block:
        return True
    if not isinstance(block, dict):
        raise PolicyError(f"malformed Condition {block!r}")
    for operator, pairs in block.items():
        if not isinstance(pairs, dict):
            raise PolicyError(f"malformed Condition {operator}: {pairs!r}")
        for key, expected in pairs.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


# --- statements ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    effect: str
    how: str  # "identity" for identity policies; "direct" or "account" for resource policies
    where: str


def statements_of(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    parsed = _parse(document) if isinstance(document, str) else document
    statements = parsed.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


@lru_cache(maxsize=1024)
def _parse(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise PolicyError("policy is not a JSON object")
    return parsed


def _statement_match(statement: dict[str, Any], request: AuthzRequest, with_principal: bool,
                     where: str) -> _Match | None:
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"statement {statement.get('Sid', '')!r} has Effect {effect!r}")
    if "Action" in statement:
        if not _action_matches(as_list(statement["Action"]), request.action):
            return None
    elif "NotAction" in statement:
        if _action_matches(as_list(statement["NotAction"]), request.action):
            return None
    else:
        raise PolicyError(f"statement {statement.get('Sid', '')!r} has neither Action nor NotAction")
    if "Resource" in statement:
        if not _resource_matches(as_list(statement["Resource"]), request.resource, request.context):
            return None
    elif "NotResource" in statement:
        if _resource_matches(as_list(statement["NotResource"]), request.resource, request.context):
            return None
    elif not with_principal:
        raise PolicyError(f"statement {statement.get('Sid', '')!r} has neither Resource nor NotResource")
    how = "identity"
    if with_principal:
        if "Principal" in statement:
            found = _principal_match(statement["Principal"], request.principal)
            if found is None:
                return None
            how = found
        elif "NotPrincipal" in statement:
            if _not_principal_exempts(statement["NotPrincipal"], request.principal):
                return None
            how = "direct"
        else:
            raise PolicyError(f"resource policy statement {statement.get('Sid', '')!r} has no Principal")
    if not _conditions_hold(statement.get("Condition"), request.context):
        return None
    sid = statement.get("Sid")
    return _Match(effect, how, f"{where}#{sid}" if sid else where)


def _matches(sources: Iterable[PolicySource], request: AuthzRequest, with_principal: bool) -> list[_Match]:
    found = []
    for source in sources:
        for statement in statements_of(source.document):
            match = _statement_match(statement, request, with_principal, source.name)
            if match:
                found.append(match)
    return found


def evaluate(request: AuthzRequest, identity: Iterable[PolicySource] = (),
             resource: PolicySource | None = None, boundary: Iterable[PolicySource] | None = None,
             key_policy: bool = False) -> Decision:
    """AWS's decision for one (action, resource) of a same-account request.

    ``resource`` is the resource's own policy (bucket, queue, topic, function, key);
    ``key_policy`` marks it as a KMS key policy, which must allow (AWS's rule for keys).
    A service principal (``principal.service``) is judged by the resource policy alone.
    """
    try:
        resource_matches = _matches([resource], request, True) if resource else []
        if request.principal.service:
            identity_matches: list[_Match] = []
            boundary_matches: list[_Match] = []
        else:
            identity_matches = _matches(identity, request, False)
            boundary_matches = _matches(boundary, request, False) if boundary is not None else []
    except PolicyError as exc:
        return Decision(False, f"policy error: {exc}")
    for match in resource_matches + identity_matches + boundary_matches:
        if match.effect == "Deny":
            return Decision(False, f"explicit deny in {match.where}")
    identity_allows = [m for m in identity_matches if m.effect == "Allow"]
    within_boundary = boundary is None or any(m.effect == "Allow" for m in boundary_matches)
    # "Resource-based policies that grant permissions to an IAM role ARN are limited by an implicit
    # deny in a permissions boundary or session policy"; granted to the session itself, they are
    # not (IAM, policy evaluation logic).
    resource_direct = [m for m in resource_matches if m.how == "direct" or (m.how == "role" and within_boundary)]
    resource_delegates = any(m.how == "account" for m in resource_matches)
    # what the boundary would have let through: an identity allow or a resource policy naming the role
    capped = identity_allows + [m for m in resource_matches if m.how == "role"]
    if key_policy:
        if resource_direct:
            return Decision(True, f"allowed by {resource_direct[0].where}")
        if resource_delegates and identity_allows and within_boundary:
            return Decision(True, f"allowed by {identity_allows[0].where} (key policy delegates to IAM)")
        return Decision(False, "no statement of the key policy allows it"
                        if not resource_delegates else _no_identity_allow(capped, within_boundary))
    if resource_direct:
        return Decision(True, f"allowed by {resource_direct[0].where}")
    if request.principal.service:
        where = resource.name if resource else "no resource-based policy"
        return Decision(False, f"no statement of {where} allows the service principal")
    if identity_allows and within_boundary:
        return Decision(True, f"allowed by {identity_allows[0].where}")
    return Decision(False, _no_identity_allow(capped, within_boundary))


def _no_identity_allow(capped: list[_Match], within_boundary: bool) -> str:
    if not within_boundary and capped:
        return "not allowed by the permissions boundary"
    return "no identity-based policy allows the action"
