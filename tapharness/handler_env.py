"""The environment variables a Lambda handler reads, found by following its code from the entry point.

``env_reads(lambdas_dir, package, handler)`` parses the package's modules and the layer's
(``tap_common``) with ``ast`` and walks every function reachable from the handler function
(called, or passed as a value), starting with the module-level code of each module it
enters. A read is a string literal given to one of the layer's configuration readers
(``tap_common.config.require/optional/integer/number/flag``) or to ``os.environ[...]``,
``os.environ.get`` and ``os.getenv``. Reads behind a variable name (not a literal) cannot be
seen, and the layer's readers never take one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from tapharness import stacks

CONFIG_MODULE = "tap_common.config"
READERS = frozenset({"require", "optional", "integer", "number", "flag"})


@dataclass
class _Module:
    name: str
    tree: ast.Module
    functions: dict[str, ast.AST] = field(default_factory=dict)
    aliases: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, symbol)


class _Walker:
    def __init__(self, lambdas_dir: Path, package: str) -> None:
        self.lambdas_dir = lambdas_dir
        self.package_dir = lambdas_dir / package
        self.modules: dict[str, _Module | None] = {}
        self.reads: set[str] = set()
        self.visited: set[tuple[str, str]] = set()
        self.queue: list[tuple[str, str | None]] = []

    def _path(self, name: str) -> Path | None:
        for base in (self.package_dir, self.lambdas_dir, stacks.COMMON_LAMBDAS):
            for candidate in (base / f"{name.replace('.', '/')}.py", base / name.replace(".", "/") / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None

    def module(self, name: str) -> _Module | None:
        if name not in self.modules:
            path = self._path(name)
            self.modules[name] = None if path is None else self._parse(name, path)
            if self.modules[name] is not None:
                self.queue.append((name, None))
        return self.modules[name]

    @staticmethod
    def _parse(name: str, path: Path) -> _Module:
        module = _Module(name, ast.parse(path.read_text(), str(path)))
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                module.functions.setdefault(node.name, node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    module.aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0], None)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    module.aliases[alias.asname or alias.name] = (node.module, alias.name)
        return module

    def _target(self, module: _Module, node: ast.AST) -> tuple[str, str] | None:
        """The (module, function) a name or ``alias.attr`` refers to."""
        if isinstance(node, ast.Name):
            if node.id in module.functions:
                return module.name, node.id
            if node.id in module.aliases:
                source, symbol = module.aliases[node.id]
                if symbol is None:
                    return None
                submodule = f"{source}.{symbol}"
                return (source, symbol) if self._path(submodule) is None else None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in module.aliases:
            source, symbol = module.aliases[node.value.id]
            return (source if symbol is None else f"{source}.{symbol}"), node.attr
        return None

    @staticmethod
    def _literal(call: ast.Call) -> str | None:
        if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
            return call.args[0].value
        return None

    def _scan(self, module: _Module, body: ast.AST) -> None:
        for node in ast.walk(body):
            if isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.slice, ast.Constant):
                self.reads.add(str(node.slice.value))
            if isinstance(node, ast.Call):
                name = self._literal(node)
                target = self._target(module, node.func)
                if name and (_is_environ_get(node.func) or (
                        target is not None and target[0] == CONFIG_MODULE and target[1] in READERS)):
                    self.reads.add(name)
            if isinstance(node, ast.Name | ast.Attribute) and isinstance(getattr(node, "ctx", None), ast.Load):
                target = self._target(module, node)
                if target:
                    self.queue.append(target)

    def run(self, entry_module: str, entry_function: str) -> set[str]:
        self.module(entry_module)
        self.queue.append((entry_module, entry_function))
        while self.queue:
            module_name, function = self.queue.pop()
            if (module_name, function or "") in self.visited:
                continue
            self.visited.add((module_name, function or ""))
            module = self.module(module_name)
            if module is None:
                continue
            if function is None:
                top_level = ast.Module(body=[n for n in module.tree.body if not isinstance(
                    n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)], type_ignores=[])
                self._scan(module, top_level)
            elif function in module.functions:
                self._scan(module, module.functions[function])
        return self.reads


def _is_os_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def _is_environ_get(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "get" and _is_os_environ(node.value):
        return True
    return (isinstance(node, ast.Attribute) and node.attr == "getenv"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def env_reads(lambdas_dir: Path, package: str, handler: str) -> set[str]:
    """Every environment variable the handler ``module.function`` of ``package`` may read."""
    module, _, function = handler.rpartition(".")
    return _Walker(lambdas_dir, package).run(module, function)
