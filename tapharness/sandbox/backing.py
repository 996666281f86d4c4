"""The real Redis and PostgreSQL behind the stack's ElastiCache and Aurora endpoints.

Started with ``tapharness.services`` (Redis TLS-only, PostgreSQL with TLS offered), then:

- TLS: the sandbox has its own CA (``<dir>/tls/ca.crt``). Function workers get
  ``SSL_CERT_FILE`` = certifi's bundle + that CA, so ``REDIS_TLS=true`` clients verify the
  server as they would ElastiCache's. Redis's certificate is reissued by that CA for
  ``localhost``, ``127.0.0.1`` and every ElastiCache endpoint name the stack has
  (``CONFIG SET tls-cert-file``), so hostname checks pass for the names the handlers use.
  PostgreSQL keeps its self-signed certificate (the handlers encrypt without verifying, as
  with Aurora's RDS CA).
- Cluster mode: a second Redis runs as a Redis Cluster of one node owning every slot, behind the
  replication groups in cluster mode (``endpoints.cluster_mode_groups``): commands on keys of
  different slots fail with CROSSSLOT as on ElastiCache, and CLUSTER SLOTS names the node by the
  group's first node endpoint on port 6379, which workers map to it, so a cluster client's
  connections take the same paths (and TLS checks) as its first one.
- Auth: ``configure()`` takes the credentials the stack gave the resources themselves, as AWS
  does: the replication group's ``AuthToken`` becomes Redis ``requirepass``; each PostgreSQL
  DB cluster's (or instance's) master user, password and database are created or updated in
  PostgreSQL. Whatever the stack's secrets say must match them, as on AWS.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import pg8000.native
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.core import DEFAULT_ACCOUNT_ID

from tapharness import services, toolchain
from tapharness.sandbox.clients import AwsClients
from tapharness.sandbox.endpoints import cluster_mode_groups, redis_hostnames


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class LocalCA:
    """A private certificate authority that issues server certificates for given names."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name("tapstack sandbox CA")).issuer_name(_name("tapstack sandbox CA"))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.bundle_file = directory / "bundle.pem"
        self.bundle_file.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + self.ca_file.read_bytes())
        self._issued = 0

    def issue(self, names: list[str]) -> tuple[Path, Path]:
        """A new server certificate and key for the DNS names (and IP addresses) given."""
        self._issued += 1
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            # The names are the SANs; a common name holds 64 characters at most (Neptune's names are longer).
            x509.CertificateBuilder().subject_name(_name(names[0] if len(names[0]) <= 64 else "tapstack sandbox server"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        cert_file = self.directory / f"server-{self._issued}.crt"
        key_file = self.directory / f"server-{self._issued}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return cert_file, key_file


@dataclass(frozen=True)
class StackCredentials:
    """The credentials the deployed stack set on its cache and database resources."""

    redis_auth_token: str | None
    databases: list[dict[str, str]]


def read_stack_credentials(account: str, region: str) -> StackCredentials:
    """From moto's models (in this process): the ElastiCache auth token (kept by the shims; the
    API never returns it) and the master credentials of every PostgreSQL DB cluster and instance."""
    from moto.elasticache.models import elasticache_backends
    from moto.rds.models import rds_backends

    cache = elasticache_backends[account][region]
    tokens = [t for g in cache.replication_groups.values() if (t := getattr(g, "auth_token", None))]
    tokens += [c.auth_token for c in cache.cache_clusters.values() if getattr(c, "auth_token", None)]
    rds = rds_backends[account][region]
    databases = [  # moto hides the password behind a property that raises; it keeps it here
        {"username": db.master_username, "password": password,
         "dbname": getattr(db, "database_name", None) or getattr(db, "db_name", None) or "postgres"}
        for db in (*rds.clusters.values(), *rds.databases.values())
        if "postgres" in (db.engine or "") and (password := db.__dict__.get("_master_user_password"))
    ]
    return StackCredentials(tokens[-1] if tokens else None, databases)  # one Redis: the newest group's token


class BackingServices:
    """Redis and PostgreSQL for one sandbox, and their configuration from the deployed stack."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = LocalCA(directory / "tls")
        self.redis: services.RedisServer | None = None
        self.redis_cluster: services.RedisServer | None = None
        self.postgres: services.PostgresServer | None = None
        self.gremlin: services.GremlinServer | None = None
        self.redis_password = ""
        self.postgres_admin_password = ""
        self.db_credentials: dict[str, str] = {}

    def start(self) -> None:
        """Start the servers; one that fails to start stops those already started (no orphans)."""
        try:
            self.redis = services.start_redis(tls=True)
            self.redis_password = self.redis.password
            self.redis_cluster = services.start_redis(password=self.redis_password, tls=True, cluster=True)
            self.postgres = services.start_postgres(ssl_enabled=True)
            self.postgres_admin_password = self.postgres.password
            self.db_credentials = {"user": self.postgres.user, "password": self.postgres.password,
                                   "database": self.postgres.database}
            self.reissue_redis_certificate([])
        except BaseException:
            self.stop()
            raise

    def start_gremlin(self) -> services.GremlinServer:
        """The Gremlin Server behind the stack's Neptune clusters, started the first time one is seen."""
        if self.gremlin is None:
            self.gremlin = services.start_gremlin(toolchain.gremlin_lib(), toolchain.GREMLIN_SOURCE)
        return self.gremlin

    def stop(self) -> None:
        for server in (self.redis, self.redis_cluster, self.postgres, self.gremlin):
            if server is not None:
                server.stop()
        self.redis = self.redis_cluster = self.postgres = self.gremlin = None

    @property
    def worker_env(self) -> dict[str, str]:
        """Variables every function worker gets so TLS to the sandbox's servers verifies."""
        # botocore reads AWS_CA_BUNDLE, not SSL_CERT_FILE: a function calling the gateway's HTTPS
        # names (an API's @connections) through an SDK client needs both.
        return {"SSL_CERT_FILE": str(self.ca.bundle_file), "AWS_CA_BUNDLE": str(self.ca.bundle_file)}

    def _redis_admin(self, server: services.RedisServer) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=server.port, password=self.redis_password, ssl=True,
                           ssl_cert_reqs="none", ssl_check_hostname=False, socket_timeout=5)

    def _redis_admins(self) -> list[redis.Redis]:
        """Clients of both Redis servers (plain and cluster), as their administrator."""
        return [self._redis_admin(server) for server in (self.redis, self.redis_cluster) if server is not None]

    def reissue_redis_certificate(self, hostnames: list[str]) -> None:
        """Serve a certificate from the sandbox CA valid for localhost and the given endpoint names."""
        cert, key = self.ca.issue(["localhost", "127.0.0.1", *sorted(hostnames)])
        for admin in self._redis_admins():
            admin.execute_command("CONFIG", "SET", "tls-cert-file", str(cert), "tls-key-file", str(key),
                                  "tls-ca-cert-file", str(self.ca.ca_file))
            admin.close()

    def configure(self, clients: AwsClients) -> dict[str, Any]:
        """Match the servers to the deployed stack: endpoint names, auth token, master users."""
        credentials = read_stack_credentials(DEFAULT_ACCOUNT_ID, clients.region)
        elasticache = clients.client("elasticache")
        hostnames = sorted(redis_hostnames(elasticache))
        self.reissue_redis_certificate(hostnames)
        announced = sorted(set(cluster_mode_groups(elasticache).values()))
        if announced and self.redis_cluster is not None:  # CLUSTER SLOTS names the node as ElastiCache would
            admin = self._redis_admin(self.redis_cluster)
            admin.config_set("cluster-announce-hostname", announced[0])
            admin.config_set("cluster-announce-tls-port", 6379)
            admin.close()
        if credentials.redis_auth_token:
            for admin in self._redis_admins():
                admin.config_set("requirepass", credentials.redis_auth_token)
                admin.config_set("masterauth", credentials.redis_auth_token)
                admin.close()
            self.redis_password = credentials.redis_auth_token
        for database in credentials.databases:
            self._configure_postgres(database["username"], database["password"], database["dbname"])
        return {**self.info(), "stack_uses": {"redis": bool(hostnames), "postgres": bool(credentials.databases)}}

    def _configure_postgres(self, user: str, password: str, database: str) -> None:
        assert self.postgres is not None
        admin = pg8000.native.Connection(self.postgres.user, password=self.postgres_admin_password, host="127.0.0.1",
                                         port=self.postgres.port, database=self.postgres.database)
        try:
            quoted_user, quoted_password = pg8000.native.identifier(user), pg8000.native.literal(password)
            if admin.run("SELECT 1 FROM pg_roles WHERE rolname = :name", name=user):
                admin.run(f"ALTER ROLE {quoted_user} WITH LOGIN PASSWORD {quoted_password}")
            else:
                admin.run(f"CREATE ROLE {quoted_user} WITH LOGIN CREATEDB PASSWORD {quoted_password}")
            if not admin.run("SELECT 1 FROM pg_database WHERE datname = :name", name=database):
                admin.run(f"CREATE DATABASE {pg8000.native.identifier(database)} OWNER {quoted_user}")
        finally:
            admin.close()
        if user == self.postgres.user:
            self.postgres_admin_password = password
        self.db_credentials = {"user": user, "password": password, "database": database}

    def run_sql(self, sql: str) -> list[list[Any]]:
        """Rows of a query on the stack's database, as its master user (the model endpoints' training data)."""
        assert self.postgres is not None
        credentials = self.db_credentials
        conn = pg8000.native.Connection(credentials["user"], password=credentials["password"], host="127.0.0.1",
                                        port=self.postgres.port, database=credentials["database"], timeout=30)
        try:
            return conn.run(sql)
        finally:
            conn.close()

    def info(self) -> dict[str, Any]:
        """Local connection details (for the outputs file and ``status``)."""
        assert self.redis is not None and self.postgres is not None
        return {
            "redis": {"host": "127.0.0.1", "port": self.redis.port, "tls": True, "ca_file": str(self.ca.ca_file),
                      "password": self.redis_password},
            # A Redis Cluster of one node owning every slot, behind the replication groups in cluster mode.
            "redis_cluster": {"host": "127.0.0.1", "port": self.redis_cluster.port if self.redis_cluster else None,
                              "tls": True, "ca_file": str(self.ca.ca_file), "password": self.redis_password},
            "postgres": {"host": "127.0.0.1", "port": self.postgres.port, "ssl": True, **self.db_credentials},
            "ca_bundle": str(self.ca.bundle_file),
        }
