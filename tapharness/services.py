"""Real Redis and PostgreSQL servers on free local ports, for tests and the sandbox.

Each launcher starts a private server in its own temporary directory and returns its
connection details plus `stop()`, which ends the process and removes the directory.
They raise ServiceUnavailable when a binary is not installed (Debian packages
`redis-server`, `postgresql`, `openssl`), so callers can skip with that reason, and
ServiceFailed when an installed server does not start, which callers should not hide.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

POSTGRES_BIN_DIRS = tuple(Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15))
READY_TIMEOUT_S = 30.0


class ServiceUnavailable(RuntimeError):
    """A binary the server needs is not installed; the message says which."""


class ServiceFailed(RuntimeError):
    """The server is installed but did not start; the message carries its log."""


@dataclass
class RedisServer:
    host: str
    port: int
    password: str
    tls: bool
    ca_file: Path | None
    stop: Callable[[], None] = field(repr=False)


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    ssl: bool
    stop: Callable[[], None] = field(repr=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str, extra_dirs: tuple[Path, ...] = ()) -> str | None:
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def make_certificate(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate (also its own CA) valid for localhost and 127.0.0.1."""
    openssl = find_binary("openssl")
    if openssl is None:
        raise ServiceUnavailable("openssl is not installed; it is needed for TLS test servers")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={common_name}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def _stopper(process: subprocess.Popen[bytes], workdir: Path) -> Callable[[], None]:
    """``stop()`` of a server: end the process (killed after 10 s) and remove its directory."""
    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    return stop


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, what: str,
                   timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceFailed(f"{what} exited with {process.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise ServiceFailed(f"{what} not accepting connections on {port} after {timeout}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError as exc:
        return f"(no log: {exc})"


def _exchange(sock: socket.socket, payload: bytes) -> bool:
    sock.sendall(payload)
    reply = b""
    while b"PONG" not in reply and len(reply) < 200:
        chunk = sock.recv(200)
        if not chunk:
            break
        reply += chunk
    return b"PONG" in reply


def _redis_ping(port: int, password: str, ca_file: Path | None) -> bool:
    """AUTH + PING over RESP; True once the server answers PONG."""
    payload = (
        f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n".encode()
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw:
            if ca_file is None:
                return _exchange(raw, payload)
            context = ssl.create_default_context(cafile=str(ca_file))
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return _exchange(tls, payload)
    except OSError:
        return False


def start_redis(password: str | None = None, tls: bool = False, cluster: bool = False) -> RedisServer:
    """redis-server with requirepass (and TLS only, no plain port, when `tls`). With `cluster`, a Redis
    Cluster of one node that owns every slot: commands on keys of different slots fail (CROSSSLOT)
    as on a cluster-mode ElastiCache group, and CLUSTER SLOTS names the node by the hostname set
    with ``cluster-announce-hostname``."""
    binary = find_binary("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server is not installed (apt-get install -y redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="tap-redis-"))
    password = password or secrets.token_urlsafe(24)
    port = free_port()
    args = [
        binary, "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "no",
        "--requirepass", password, "--logfile", str(workdir / "redis.log"), "--daemonize", "no",
    ]
    ca_file: Path | None = None
    if tls:
        cert, key = make_certificate(workdir)
        ca_file = cert
        args += [
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        ]
    else:
        args += ["--port", str(port)]
    if cluster:
        # The cluster bus on a port of its own: by default it is the client port + 10,000, which a
        # free port above 55,535 cannot have.
        args += ["--cluster-enabled", "yes", "--cluster-config-file", str(workdir / "nodes.conf"),
                 "--cluster-port", str(free_port()),
                 "--cluster-preferred-endpoint-type", "hostname", "--cluster-announce-hostname", "localhost",
                 "--masterauth", password]
        if tls:
            args += ["--tls-cluster", "yes"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    stop = _stopper(process, workdir)

    try:
        _wait_for_port(port, process, workdir / "redis.log", "redis-server")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _redis_ping(port, password, ca_file):
            if time.monotonic() > deadline:
                raise ServiceFailed(f"redis-server never answered PING: {_tail(workdir / 'redis.log')}")
            time.sleep(0.05)
        if cluster:
            _own_every_slot(port, password, ca_file, deadline, workdir / "redis.log")
    except BaseException:
        stop()
        raise
    return RedisServer("127.0.0.1", port, password, tls, ca_file, stop)


def _own_every_slot(port: int, password: str, ca_file: Path | None, deadline: float, log_file: Path) -> None:
    """Give the one node all 16,384 slots and wait for the cluster to say it is ok."""
    import redis  # the harness's venv has it; the other launchers need nothing beyond the standard library

    client = redis.Redis(host="127.0.0.1", port=port, password=password, ssl=ca_file is not None,
                         ssl_cert_reqs="none", socket_timeout=5)
    try:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        while "cluster_state:ok" not in str(client.execute_command("CLUSTER", "INFO")):
            if time.monotonic() > deadline:
                raise ServiceFailed(f"the Redis cluster never reached state ok: {_tail(log_file)}")
            time.sleep(0.05)
    finally:
        client.close()


@dataclass
class GremlinServer:
    host: str
    port: int
    stop: Callable[[], None] = field(repr=False)


def start_gremlin(lib: Path, config: Path) -> GremlinServer:
    """Apache TinkerPop's Gremlin Server (TinkerGraph in memory) on a free port: its jars in ``lib``
    (the toolchain resolves them), its YAML, graph properties and init script in ``config``."""
    java = find_binary("java")
    if java is None:
        raise ServiceUnavailable("java is not installed (apt-get install -y openjdk-17-jre-headless)")
    if not any(lib.glob("gremlin-server-*.jar")):
        raise ServiceUnavailable(f"Gremlin Server's jars are not in {lib}: run `make setup`")
    workdir = Path(tempfile.mkdtemp(prefix="tap-gremlin-"))
    port = free_port()
    for name in ("tinkergraph.properties", "init.groovy"):
        shutil.copy(config / name, workdir / name)
    settings = (config / "gremlin-server.yaml").read_text().replace("port: 8182", f"port: {port}")
    (workdir / "gremlin-server.yaml").write_text(settings)
    log = workdir / "gremlin.log"
    with log.open("wb") as out:
        process = subprocess.Popen([java, "-Xms64m", "-Xmx512m", "-cp", f"{lib}/*",
                                    "org.apache.tinkerpop.gremlin.server.GremlinServer", "gremlin-server.yaml"],
                                   cwd=workdir, stdout=out, stderr=subprocess.STDOUT)

    stop = _stopper(process, workdir)

    try:
        _wait_for_port(port, process, log, "Gremlin Server", timeout=60)  # the JVM and Groovy take seconds
    except BaseException:
        stop()
        raise
    return GremlinServer("127.0.0.1", port, stop)


def _postgres_runner(workdir: Path) -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """initdb and postgres refuse to run as root: run them as the `postgres` account then."""
    if os.geteuid() != 0:
        return subprocess.run
    try:
        account = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceUnavailable("running as root and there is no 'postgres' account to run PostgreSQL") from exc
    for path in (workdir, *workdir.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid)

    def run(args: list[str], *, check: bool, capture_output: bool) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            args, check=check, capture_output=capture_output, user=account.pw_uid, group=account.pw_gid
        )

    return run


def start_postgres(
    user: str = "tap", password: str | None = None, database: str = "tap", ssl_enabled: bool = True
) -> PostgresServer:
    """A PostgreSQL cluster (initdb) with a password (scram) superuser and one database;
    TLS offered with a self-signed certificate when `ssl_enabled`."""
    initdb = find_binary("initdb", POSTGRES_BIN_DIRS)
    pg_ctl = find_binary("pg_ctl", POSTGRES_BIN_DIRS)
    createdb = find_binary("createdb", POSTGRES_BIN_DIRS)
    if not (initdb and pg_ctl and createdb):
        raise ServiceUnavailable("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    password = password or secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="tap-postgres-"))
    data, log = workdir / "data", workdir / "postgres.log"
    (workdir / "pwfile").write_text(password + "\n")
    if ssl_enabled:
        make_certificate(workdir)
    port = free_port()
    run = _postgres_runner(workdir)
    try:
        run(
            [initdb, "-D", str(data), "-U", user, "--pwfile", str(workdir / "pwfile"),
             "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceFailed(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc
    settings = [
        f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{workdir}'",
        "fsync = off", "synchronous_commit = off", "full_page_writes = off", "max_connections = 50",
    ]
    if ssl_enabled:
        settings += ["ssl = on", f"ssl_cert_file = '{workdir / 'server.crt'}'", f"ssl_key_file = '{workdir / 'server.key'}'"]
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n".join(settings) + "\n")

    def stop() -> None:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        started = run(
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "30", "start"], check=False, capture_output=True
        )
        if started.returncode != 0:
            raise ServiceFailed(f"pg_ctl start failed: {_tail(log)}")
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            check=True, capture_output=True, env=env,
        )
    except BaseException:
        stop()
        raise
    return PostgresServer("127.0.0.1", port, user, password, database, ssl_enabled, stop)
