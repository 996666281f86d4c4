"""The harness's interpreter: the functions' declared runtime, and safe for threads that build ASTs."""

from __future__ import annotations

import subprocess
import sys

from tapharness import toolchain

STRESS = toolchain.ROOT / "benchmarks" / "ast_race.py"


def test_the_harness_runs_on_the_python_the_functions_declare():
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running == toolchain.LAMBDA_PYTHON_VERSION, (
        f"the harness (and so every sandbox function worker) runs on Python {running}, the stacks declare "
        f"python{toolchain.LAMBDA_PYTHON_VERSION}: run `make setup` on a machine that has it")


def test_threads_parsing_source_while_another_formats_tracebacks_never_fail():
    # On 3.11 this fails within a second (SystemError: AST constructor recursion depth mismatch).
    result = subprocess.run([sys.executable, str(STRESS), "--seconds", "2"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
