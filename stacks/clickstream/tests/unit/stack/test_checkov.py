"""checkov finds nothing on any environment's plan, except the skips .checkov.yaml explains."""

from tapharness.checks.checkov import (
    test_checkov_finds_no_failed_check,
    test_every_checkov_skip_has_a_reason,
)

__all__ = ["test_checkov_finds_no_failed_check", "test_every_checkov_skip_has_a_reason"]
