"""The plans' AWS: a moto server in a process of its own, answering the provider's calls.

It runs apart from the test workers so that nothing it installs into moto (the Step Functions
definition validator the provider calls at plan time) and none of its threads live in a process
that runs tests: a handler test's ``mock_aws`` and a plan never share moto's backends, and no
server thread formats a traceback while a test parses source.

    python -m tapharness.offline_aws     # prints "ready <port>", serves until stdin closes
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tapharness import toolchain

READY_TIMEOUT_S = 60.0


@contextmanager
def moto_server() -> Iterator[str]:
    """Start the server process; yields its endpoint and stops it on exit."""
    log = tempfile.NamedTemporaryFile(prefix="tapstack-offline-aws-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "tapharness.offline_aws"], cwd=toolchain.ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    assert process.stdout is not None and process.stdin is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            process.kill()
            raise RuntimeError(f"the offline AWS server did not start in {READY_TIMEOUT_S:.0f} s (exit "
                               f"{process.poll()}); its log: {log.name}")
        Path(log.name).unlink()  # it started: nothing in the log is needed
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    from moto.server import ThreadedMotoServer

    from tapharness.sandbox import asl

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    asl.install()  # the provider validates a definition it knows at plan time
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"ready {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()  # until the parent closes it, or exits
    server.stop()


if __name__ == "__main__":
    main()
