"""The IAM inventory of a stack (its ``docs/iam_inventory.yaml``): what each function's role is used for.

``Inventory.load(path)``; ``needed(function)`` is every action the role must grant (its own
entries plus ``every_function``); ``handler_actions(source)`` the actions the handler code of
one source directory may need (the union over the functions built from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tapharness import stacks

USERS = ("handler", "mapping", "lambda", "on_behalf")


@dataclass(frozen=True)
class Inventory:
    every_function: dict[str, tuple[str, ...]]
    functions: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path | None = None) -> Inventory:
        """The inventory at ``path``, by default the one of the stack under test (``stacks.resolve``)."""
        raw = yaml.safe_load((path or stacks.resolve().inventory_file).read_text())
        every = {user: tuple(raw["every_function"].get(user) or ()) for user in USERS}
        return cls(every, raw["functions"])

    def needed(self, function: str) -> set[str]:
        entry = self.functions[function]
        return {a for user in USERS for a in (*self.every_function[user], *(entry.get(user) or ()))}

    def by_user(self, function: str) -> dict[str, tuple[str, ...]]:
        entry = self.functions[function]
        return {user: (*self.every_function[user], *(entry.get(user) or ())) for user in USERS}

    def handler_actions(self, source: str) -> set[str]:
        return {a for entry in self.functions.values() if entry["source"] == source for a in entry.get("handler") or ()}
