"""The IAM report of a sandbox run: per role, what it used, what it was refused, what it never used.

``build_report(authorizer)`` (served at ``GET /_sandbox/iam``) gives, for every role of the
account and every service principal that was checked:
- ``used``: each allowed (action, resource), with the calls that needed it and how often;
- ``denied``: each denied (action, resource), with the call, the reason and how often;
- ``unused``: each action a role's policies grant (``Allow`` statements, by action pattern)
  that no allowed request of the run matched.
``format_report`` renders it as text for ``python -m tapharness.sandbox iam``.
"""

from __future__ import annotations

from typing import Any

from tapharness.sandbox.iam.authorizer import PARTITION, Authorizer, Record, backends
from tapharness.sandbox.iam.policy import (
    Principal,
    as_list,
    statements_of,
    wildcard_match,
)


def _unused(role_arn: str, account: str, allowed: list[Record]) -> list[dict[str, Any]]:
    sources, _ = Authorizer.identity_policies(Principal(role_arn, account, role_arn=role_arn))
    unused = []
    for source in sources:
        for statement in statements_of(source.document):
            if statement.get("Effect") != "Allow" or "Action" not in statement:
                continue
            resources = as_list(statement.get("Resource"))
            for pattern in as_list(statement["Action"]):
                hit = any(wildcard_match(pattern, r.action, ignore_case=True)
                          and any(wildcard_match(res, r.resource) for res in resources) for r in allowed)
                if not hit:
                    unused.append({"policy": source.name, "sid": statement.get("Sid", ""),
                                   "action": pattern, "resources": resources})
    return unused


def build_report(authorizer: Authorizer) -> dict[str, Any]:
    """The report as JSON-ready data; ``denials`` counts distinct denied (principal, action, resource)."""
    records = authorizer.log.records()
    by_role: dict[str, list[Record]] = {}
    for record in records:
        by_role.setdefault(record.role, []).append(record)
    roles: dict[str, str] = {}
    iam = backends("iam")
    for account in list(iam.keys()):
        for role in iam[account][PARTITION].roles.values():
            roles[role.arn] = account
    principals = []
    for name in sorted(set(by_role) | set(roles)):
        entries = by_role.get(name, [])
        allowed = [r for r in entries if r.allowed]
        denied = [r for r in entries if not r.allowed]
        used: dict[tuple[str, str], dict[str, Any]] = {}
        for record in allowed:
            entry = used.setdefault((record.action, record.resource),
                                    {"action": record.action, "resource": record.resource, "calls": [], "count": 0})
            entry["count"] += record.count
            if record.call not in entry["calls"]:
                entry["calls"].append(record.call)
        principals.append({
            "principal": name,
            "sessions": sorted({r.principal for r in entries}),
            "used": sorted(used.values(), key=lambda e: (e["action"], e["resource"])),
            "denied": [{"action": r.action, "resource": r.resource, "call": r.call, "reason": r.reason,
                        "count": r.count, "session": r.principal} for r in sorted(denied, key=lambda r: r.first)],
            "unused": _unused(name, roles[name], allowed) if name in roles else [],
        })
    return {"denials": sum(len(p["denied"]) for p in principals), "principals": principals}


def format_report(report: dict[str, Any], show_unused: bool = True) -> str:
    """The report as text, denials first."""
    lines = [f"IAM report: {report['denials']} denied (action, resource) pair(s)"]
    for principal in report["principals"]:
        if not (principal["used"] or principal["denied"] or principal["unused"]):
            continue
        lines.append("")
        lines.append(principal["principal"])
        for entry in principal["denied"]:
            lines.append(f"  DENIED  {entry['action']} on {entry['resource']} ×{entry['count']} "
                         f"({entry['call']} by {entry['session']}): {entry['reason']}")
        for entry in principal["used"]:
            lines.append(f"  allowed {entry['action']} on {entry['resource']} ×{entry['count']} "
                         f"({', '.join(entry['calls'])})")
        if show_unused:
            for entry in principal["unused"]:
                lines.append(f"  unused  {entry['action']} on {', '.join(entry['resources'])} "
                             f"({entry['policy']}#{entry['sid']})")
    return "\n".join(lines)
