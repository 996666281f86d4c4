"""The stacks the harness proves, each a root directory from which every path derives.

The repository root is the video-streaming stack (``video_streaming``); every directory under
``stacks/`` that holds ``lib/tap_stack.tf`` is another, named after the directory. A stack root
holds ``lib/`` (``tap_stack.tf``, ``provider.tf``, ``lambdas/``, ``layer/``), ``tfvars/<env>.tfvars``,
``docs/iam_inventory.yaml`` and ``tests/{unit,integration}``. Every stack's layer carries
``tap_common`` (the family's runtime library, ``runtime/tap_common``, beside the stacks) and the
stack's own ``lib/lambdas/*_common`` packages. Harness commands take the stack by
name (``--stack NAME``, or ``TAPSTACK_STACK`` for test runs), or as a directory, inside the
repository or not, whose ``lib/`` holds its ``*.tf`` (a scratch copy of a stack with one permission
removed, or a stack of nobody's conventions: no layer, no tfvars, none of our variables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tapharness import toolchain
from tapharness.toolchain import ROOT as REPO_ROOT

STACKS_DIR = REPO_ROOT / "stacks"
# The directory holding tap_common (toolchain.SHARED_RUNTIME): on sys.path, it imports as the layer ships it.
COMMON_LAMBDAS = toolchain.SHARED_RUNTIME.parent
DEFAULT_STACK = "video_streaming"
ENV_VAR = "TAPSTACK_STACK"


class UnknownStack(ValueError):
    """No stack of that name, and no stack directory at that path."""


@dataclass(frozen=True)
class Stack:
    name: str
    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def lambdas(self) -> Path:
        return self.lib / "lambdas"

    @property
    def tfvars(self) -> Path:
        return self.root / "tfvars"

    def tfvars_file(self, env: str) -> Path:
        return self.tfvars / f"{env}.tfvars"

    def backend_file(self, env: str) -> Path:
        """``backend/<env>.hcl``: the remote-state settings of a stack with an S3 backend (may not exist)."""
        return self.root / "backend" / f"{env}.hcl"

    @property
    def inventory_file(self) -> Path:
        return self.root / "docs" / "iam_inventory.yaml"


def _is_stack(directory: Path) -> bool:
    return (directory / "lib" / "tap_stack.tf").is_file()


def _has_configuration(directory: Path) -> bool:
    return any((directory / "lib").glob("*.tf"))


def registry(stacks_dir: Path | None = None) -> dict[str, Stack]:
    """Every stack of the repository by name: the root one first, then ``stacks/*`` by name."""
    found = {DEFAULT_STACK: Stack(DEFAULT_STACK, REPO_ROOT)}
    directory = STACKS_DIR if stacks_dir is None else stacks_dir
    if directory.is_dir():
        for root in sorted(p for p in directory.iterdir() if p.is_dir() and _is_stack(p)):
            if root.name in found:
                raise UnknownStack(f"{root} is named {root.name!r}, which the repository root's stack already is")
            found[root.name] = Stack(root.name, root.resolve())
    return found


def resolve(name_or_dir: str | None = None, stacks_dir: Path | None = None) -> Stack:
    """A stack by name or directory; None means ``TAPSTACK_STACK``, or the default stack."""
    wanted = name_or_dir or os.environ.get(ENV_VAR) or DEFAULT_STACK
    known = registry(stacks_dir)
    if wanted in known:
        return known[wanted]
    directory = Path(wanted).expanduser()
    if directory.is_dir() and _has_configuration(directory):
        root = directory.resolve()
        named = [stack for stack in known.values() if stack.root == root]
        return named[0] if named else Stack(root.name, root)
    raise UnknownStack(f"no stack {wanted!r}: the stacks are {', '.join(known)}, or give a directory whose "
                       "lib/ holds its *.tf files")
