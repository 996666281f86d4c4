"""Two threads building ASTs while a third formats tracebacks under garbage-collection pressure.

On CPython 3.11 the AST converter's recursion counter is per interpreter, not per thread: a
finalizer run by the collector in the middle of ``ast.parse`` lets another thread parse, and
one of them fails with ``SystemError: AST constructor recursion depth mismatch`` (traceback
formatting parses source lines too, to place its carets). Measured on 3.11.7: within a second,
every run; on 3.12.1 and 3.13.0: never in 60 s.

    python benchmarks/ast_race.py --seconds 60     # exit 1 with the time to the first error
"""

from __future__ import annotations

import argparse
import ast
import gc
import inspect
import sys
import threading
import time
import traceback

SOURCE = inspect.getsource(ast)  # a large module, so each parse builds a deep tree


class _Cycle:
    """Garbage only the cyclic collector frees, with a finalizer that runs Python code."""

    def __del__(self) -> None:
        sum(range(50))


def _fail(depth: int) -> int:
    if depth:
        return _fail(depth - 1)
    return {}["missing"][0] + 1  # a subscript and an operator: the traceback parses this line


def run(seconds: float) -> tuple[float, str | None]:
    """Stress for ``seconds``; (elapsed, the first SystemError or None)."""
    deadline = time.monotonic() + seconds
    errors: list[str] = []

    def parse() -> None:
        while time.monotonic() < deadline and not errors:
            try:
                ast.parse(SOURCE)
            except SystemError as exc:
                errors.append(repr(exc))

    def format_tracebacks() -> None:
        while time.monotonic() < deadline and not errors:
            try:
                _fail(20)
            except LookupError:
                try:
                    traceback.format_exc()
                except SystemError as exc:  # the race can hit the formatting side too
                    errors.append(repr(exc))
            for _ in range(200):
                first, second = _Cycle(), _Cycle()
                first.other, second.other = second, first

    thresholds = gc.get_threshold()
    gc.set_threshold(50, 5, 5)
    start = time.monotonic()
    threads = [threading.Thread(target=parse), threading.Thread(target=parse),
               threading.Thread(target=format_tracebacks)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*thresholds)
    return time.monotonic() - start, errors[0] if errors else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    elapsed, error = run(args.seconds)
    version = sys.version.split()[0]
    if error:
        print(f"Python {version}: {error} after {elapsed:.1f} s")
        return 1
    print(f"Python {version}: no error in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
