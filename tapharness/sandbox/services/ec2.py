"""EC2: security group rules that keep their description."""

from __future__ import annotations

from moto.ec2.models.security_groups import SecurityGroupRule

from tapharness.sandbox.patches import patch


# EC2: a rule that references a security group loses its description.
def _security_group_rule_description(self: SecurityGroupRule) -> str | None:
    return self.ip_range.get("Description") or self.source_group.get("Description")


patch.replace(SecurityGroupRule, "description", property(_security_group_rule_description))
