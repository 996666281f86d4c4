"""Athena queries that run: SELECT and CREATE TABLE AS SELECT executed by DuckDB over the sandbox's S3.

moto records a StartQueryExecution and reports it SUCCEEDED without running it. Here a SELECT (or
WITH ... SELECT) runs over the tables it names (``"db"."t"``, ``db.t``, or ``t`` of the
QueryExecutionContext's database) as a CTAS's SELECT does below; its rows are what
GetQueryResults pages through (a header row first, values as text, types in ResultSetMetadata)
and are written as Athena writes them to the result location (the request's, else the
workgroup's: ``<location>/<execution id>.csv``, header row, every value quoted) with the caller's
``s3:PutObject``; without a result location it fails as Athena does. A CTAS
(``CREATE TABLE "db"."t" WITH (format = 'PARQUET', external_location = 's3://…',
partitioned_by = ARRAY[…]) AS SELECT …``) runs as Athena runs it:

- Source tables come from the Glue catalogue: their columns, JSON SerDe and location. A
  partitioned table reads the partitions that partition projection (``projection.enabled``,
  ``storage.location.template``) or, without it, the registered Glue partitions give, pruned by
  the query's ``column = 'value'`` predicates on partition columns, so a one-day query reads one
  day of objects. Those bytes are the query's DataScannedInBytes, and a workgroup's
  BytesScannedCutoffPerQuery fails a query that would read more.
- The SELECT runs in DuckDB (its SQL is close enough to Trino's for the stacks' queries); its
  rows are written as Parquet under ``external_location`` (Hive-style ``col=value/`` directories
  for ``partitioned_by``, those columns last), and the table and its partitions are registered
  in Glue. As on Athena, a CTAS fails when the table exists or the location holds objects.
- The caller's own permissions are evaluated for what Athena does on its behalf: ``s3:GetObject``
  on every object read, ``s3:PutObject`` on every object written, ``glue:GetTable`` on the
  sources, ``glue:CreateTable`` and ``glue:BatchCreatePartition`` on the new table.
- A ClientRequestToken seen before returns the first execution's id (Athena's idempotency).

The query runs on a thread: QUEUED → RUNNING → SUCCEEDED, or FAILED with a StateChangeReason.
Any other statement moto does not run is FAILED ("not run by the sandbox"), never a false
SUCCEEDED; the emulation gaps list this.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from moto.glue import glue_backends
from moto.s3.models import s3_backends

log = logging.getLogger("tapharness.sandbox.athena")

# (action, resource ARN) → allowed? for the caller whose keys signed StartQueryExecution.
Allows = Callable[[str, str], bool]

_CTAS = re.compile(
    r"^\s*CREATE\s+TABLE\s+(?:\"?(?P<db>\w+)\"?\.)?\"?(?P<table>\w+)\"?\s+WITH\s*\((?P<props>.*?)\)\s*AS\s+(?P<select>SELECT\b.*)$",
    re.IGNORECASE | re.DOTALL)
_PROPERTY = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|ARRAY\s*\[[^\]]*\])", re.IGNORECASE)
_SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_CTE_NAME = re.compile(r"(?:\bWITH|,)\s+(\w+)\s+AS\s*\(", re.IGNORECASE)
# A table after FROM or JOIN: "db"."t", db.t, or t (of the query's database); not a subquery or CTE name.
_FROM_TABLE = re.compile(
    r"(?P<lead>\b(?:FROM|JOIN)\s+)(?:\"(?P<db>\w+)\"\s*\.\s*\"(?P<table>\w+)\"|(?:(?P<udb>\w+)\.)?(?P<utable>\w+)\b)",
    re.IGNORECASE)
_EQUALS = re.compile(r"\b(\w+)\s*=\s*'([^']*)'")
_S3 = re.compile(r"^s3://([^/]+)/?(.*)$")
_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "float": "FLOAT", "bigint": "BIGINT", "int": "INTEGER",
          "integer": "INTEGER", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "date": "DATE"}
# DuckDB type → the Glue type a CTAS registers (the first Glue name of each: "int", not "integer").
_GLUE_TYPES = {duck: glue for glue, duck in reversed(_TYPES.items())}


class QueryFailed(Exception):
    """The query fails with this StateChangeReason."""


@dataclass
class Run:
    state: str = "QUEUED"
    reason: str = ""
    scanned_bytes: int = 0
    submitted: float = field(default_factory=time.time)
    completed: float | None = None
    output_location: str | None = None  # a SELECT's result file
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, Athena type)
    rows: list[list[str | None]] = field(default_factory=list)


def _s3_location(url: str) -> tuple[str, str]:
    match = _S3.match(url)
    if not match:
        raise QueryFailed(f"not an S3 location: {url}")
    return match.group(1), match.group(2)


def _properties(text: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, raw in _PROPERTY.findall(text):
        if raw.upper().startswith("ARRAY"):
            properties[name.lower()] = re.findall(r"'([^']*)'", raw)
        else:
            properties[name.lower()] = raw[1:-1].replace("''", "'")
    return properties


@dataclass(frozen=True)
class SourceTable:
    database: str
    name: str
    location: str
    columns: list[tuple[str, str]]
    partition_keys: list[str]
    parameters: dict[str, str]
    partitions: list[tuple[dict[str, str], str]]  # registered: (values, location)

    @property
    def projected(self) -> bool:
        return bool(self.partition_keys) and self.parameters.get("projection.enabled", "").lower() == "true"

    @property
    def template(self) -> str:
        """Where a partition's objects lie: the projection's template, or Hive's layout."""
        return self.parameters.get("storage.location.template") or (
            self.location.rstrip("/") + "/" + "/".join(f"{k}=${{{k}}}" for k in self.partition_keys) + "/")

    def prefixes(self, wanted: dict[str, str]) -> list[tuple[str, str, dict[str, str] | None]]:
        """(bucket, key prefix, pattern values or None) to list, after pruning by `wanted`."""
        bucket, prefix = _s3_location(self.location)
        if not self.partition_keys:
            return [(bucket, prefix, None)]
        if self.projected:
            t_bucket, t_prefix = _s3_location(self.template.split("${", 1)[0])
            return [(t_bucket, t_prefix, wanted)]
        chosen = []
        for values, location in self.partitions:
            if all(values.get(k, v) == v for k, v in wanted.items()):
                p_bucket, p_prefix = _s3_location(location)
                chosen.append((p_bucket, p_prefix, values))
        return chosen

    def projected_values(self, key: str) -> dict[str, str] | None:
        """Partition values a key lies under, by the projection template; None if it does not fit."""
        _, pattern = _s3_location(self.template)
        regex = "".join(f"(?P<{part[2:-1]}>[^/]+)" if part.startswith("${") else re.escape(part)
                        for part in re.split(r"(\$\{\w+\})", pattern))
        match = re.match(regex, key)
        if not match:
            return None
        values = match.groupdict()
        for name, value in values.items():
            if not self._in_range(name, value):
                return None
        return values

    def _in_range(self, name: str, value: str) -> bool:
        if self.parameters.get(f"projection.{name}.type", "").lower() != "integer":
            return True
        digits = int(self.parameters.get(f"projection.{name}.digits", "0") or 0)
        low, high = (int(x) for x in self.parameters.get(f"projection.{name}.range", "0,0").split(","))
        return value.isdigit() and len(value) >= digits and low <= int(value) <= high and (
            digits == 0 or len(value) == digits)


class AthenaEngine:
    """Runs CTAS statements for one sandbox; executions by id."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()

    def known_token(self, token: str | None) -> str | None:
        with self.lock:
            return self.tokens.get(token) if token else None

    def start(self, execution_id: str, token: str | None, query: str, database: str | None, account: str,
              region: str, cutoff_bytes: int | None, allows: Allows, output: str | None = None) -> None:
        """Run ``query`` on a thread; ``output`` is the result location (the request's or its workgroup's)."""
        run = Run()
        if output:
            run.output_location = f"{output.rstrip('/')}/{execution_id}.csv"
        with self.lock:
            self.runs[execution_id] = run
            if token:
                self.tokens[token] = execution_id
        threading.Thread(target=self._run, name=f"athena-{execution_id[:8]}", daemon=True,
                         args=(run, query, database, account, region, cutoff_bytes, allows)).start()

    def _run(self, run: Run, query: str, database: str | None, account: str, region: str,
             cutoff_bytes: int | None, allows: Allows) -> None:
        run.state = "RUNNING"
        try:
            if _SELECT.match(query):
                run.scanned_bytes = self._select(run, query, database, account, region, cutoff_bytes, allows)
            else:
                run.scanned_bytes = self._ctas(query, database, account, region, cutoff_bytes, allows)
            run.state = "SUCCEEDED"
        except QueryFailed as exc:
            run.state, run.reason = "FAILED", str(exc)
        except duckdb.Error as exc:
            run.state, run.reason = "FAILED", f"SYNTAX_ERROR or GENERIC_INTERNAL_ERROR: {exc}"
        except Exception as exc:  # a sandbox fault (a missing bucket, say) still ends the query, never RUNNING forever
            log.exception("athena: query failed inside the sandbox")
            run.state, run.reason = "FAILED", f"GENERIC_INTERNAL_ERROR: {type(exc).__name__}: {exc}"
        run.completed = time.time()

    def _ctas(self, query: str, default_db: str | None, account: str, region: str, cutoff_bytes: int | None,
              allows: Allows) -> int:
        match = _CTAS.match(query.strip().rstrip(";"))
        if not match:
            raise QueryFailed("NOT_SUPPORTED: the sandbox runs SELECT and CREATE TABLE AS SELECT statements only "
                              "(see the emulation gaps)")
        target_db = (match.group("db") or default_db or "").lower()
        target = match.group("table").lower()
        properties = _properties(match.group("props"))
        if properties.get("format", "PARQUET").upper() != "PARQUET":
            raise QueryFailed("NOT_SUPPORTED: the sandbox writes format = 'PARQUET' only")
        location = properties.get("external_location")
        if not location:
            raise QueryFailed("the sandbox needs external_location (the workgroup default is not emulated)")
        partitioned_by = [c.lower() for c in properties.get("partitioned_by", [])]
        glue = glue_backends[account][region]
        s3 = s3_backends[account]["global"]
        arn = f"arn:aws:glue:{region}"
        if not allows("glue:CreateTable", f"{arn}:{account}:table/{target_db}/{target}"):
            raise QueryFailed(f"AccessDeniedException: not authorized to perform glue:CreateTable on {target_db}.{target}")
        if target in glue.get_database(target_db).tables:
            raise QueryFailed(f"AlreadyExistsException: Table {target_db}.{target} already exists")
        out_bucket, out_prefix = _s3_location(location if location.endswith("/") else location + "/")
        if any(k.startswith(out_prefix) for k in s3.get_bucket(out_bucket).keys):
            raise QueryFailed(f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{target_db}.{target}' "
                              f"already exists: {location}")
        select = match.group("select")
        with tempfile.TemporaryDirectory(prefix="athena-") as work, duckdb.connect() as con:
            select, scanned = self._sources(con, select, default_db, account, region, cutoff_bytes, allows, Path(work))
            result = con.sql(select)
            columns = [(name, str(kind)) for name, kind in zip(result.columns, result.types)]
            if partitioned_by and [c for c, _ in columns[-len(partitioned_by):]] != partitioned_by:
                raise QueryFailed("HIVE_COLUMN_ORDER_MISMATCH: Partition keys must be the last columns in the "
                                  "table and in the same order as the table properties")
            out_dir = Path(work) / "out"
            out_dir.mkdir()
            partition_clause = f", PARTITION_BY ({', '.join(partitioned_by)})" if partitioned_by else ""
            target_path = out_dir if partitioned_by else out_dir / "data.parquet"
            con.sql(f"COPY ({select}) TO '{target_path}' (FORMAT PARQUET, COMPRESSION SNAPPY{partition_clause})")
            written = sorted(p for p in out_dir.rglob("*") if p.is_file())
            for path in written:
                key = out_prefix + path.relative_to(out_dir).as_posix()
                if not allows("s3:PutObject", f"arn:aws:s3:::{out_bucket}/{key}"):
                    raise QueryFailed(f"Access denied when writing to location: s3://{out_bucket}/{key}")
                s3.put_object(out_bucket, key, path.read_bytes())
        self._register(glue, target_db, target, location, columns, partitioned_by, written, out_dir,
                       account, region, allows)
        return scanned

    def _sources(self, con: Any, select: str, default_db: str | None, account: str, region: str,
                 cutoff_bytes: int | None, allows: Allows, work: Path) -> tuple[str, int]:
        """``select`` with every table it names (``"db"."t"``, ``db.t``, or ``t`` of the query's database
        after FROM or JOIN) made a DuckDB view over the objects the query reads; and the bytes read."""
        glue = glue_backends[account][region]
        s3 = s3_backends[account]["global"]
        found: dict[tuple[str, str], str] = {}
        named = {name.lower() for name in _CTE_NAME.findall(select)}
        masked = _mask_literals(select)

        def view_of(match: re.Match[str]) -> str:
            if not _introduces_table(masked, match):
                return match.group(0)  # EXTRACT(x FROM y), IS DISTINCT FROM, UNNEST, a word inside a literal
            if not match.group("db") and not match.group("udb") and match.group("utable").lower() in named:
                return match.group(0)  # a WITH query's own name
            database = (match.group("db") or match.group("udb") or default_db or "").lower()
            table = (match.group("table") or match.group("utable")).lower()
            if not database:
                raise QueryFailed(f"SCHEMA_NOT_FOUND: no database for table {table} (QueryExecutionContext)")
            return match.group("lead") + found.setdefault((database, table), f"source_{len(found)}")

        rewritten = _FROM_TABLE.sub(view_of, select)
        # Partitions are pruned only by what surely holds for every row read: `col = 'value'` terms of a
        # query over one table with no OR or NOT; any other query reads every partition (and filters
        # in SQL), never fewer rows than Athena would return.
        simple = len(found) == 1 and not re.search(r"\b(OR|NOT)\b", masked, re.IGNORECASE)
        wanted = {k.lower(): v for k, v in _EQUALS.findall(select)} if simple else {}
        scanned = 0
        for ref, view in found.items():
            source = self._source(glue, ref, account, region, allows)
            scanned += self._materialise(con, s3, source, view, work / view, wanted, allows)
        if cutoff_bytes is not None and scanned > cutoff_bytes:
            raise QueryFailed(f"Query exhausted resources: bytes scanned limit was exceeded "
                              f"({scanned} bytes > BytesScannedCutoffPerQuery {cutoff_bytes})")
        return rewritten, scanned

    def _select(self, run: Run, query: str, default_db: str | None, account: str, region: str,
                cutoff_bytes: int | None, allows: Allows) -> int:
        """A SELECT: its rows kept for GetQueryResults and written, as Athena writes them, to the
        result location (a CSV with a header row, every value quoted) with the caller's s3:PutObject."""
        if run.output_location is None:
            raise QueryFailed("InvalidRequestException: No output location provided. An output location is required "
                              "either through the Workgroup result configuration setting or as an API input.")
        with tempfile.TemporaryDirectory(prefix="athena-") as work, duckdb.connect() as con:
            select, scanned = self._sources(con, query.strip().rstrip(";"), default_db, account, region, cutoff_bytes,
                                            allows, Path(work))
            result = con.sql(select)
            columns = [(name, _athena_type(str(kind))) for name, kind in zip(result.columns, result.types)]
            rows = [[_text(value) for value in row] for row in result.fetchall()]
        bucket, key = _s3_location(run.output_location)
        if not allows("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"):
            raise QueryFailed(f"Access denied when writing output to url: {run.output_location}")
        lines = [",".join(_quoted(name) for name, _ in columns)]
        lines += [",".join("" if value is None else _quoted(value) for value in row) for row in rows]
        s3_backends[account]["global"].put_object(bucket, key, ("\n".join(lines) + "\n").encode())
        run.columns, run.rows = columns, rows
        return scanned

    @staticmethod
    def _source(glue: Any, ref: tuple[str, str], account: str, region: str, allows: Allows) -> SourceTable:
        database, name = ref
        if not allows("glue:GetTable", f"arn:aws:glue:{region}:{account}:table/{database}/{name}"):
            raise QueryFailed(f"AccessDeniedException: not authorized to perform glue:GetTable on {database}.{name}")
        try:
            found = glue.get_table(database, name)
        except Exception as exc:  # moto's EntityNotFound and friends
            raise QueryFailed(f"TABLE_NOT_FOUND: Table {database}.{name} does not exist") from exc
        table = found.as_dict()
        descriptor = table.get("StorageDescriptor", {})
        keys = [k["Name"].lower() for k in table.get("PartitionKeys", [])]
        partitions = [(dict(zip(keys, p["Values"])), p["StorageDescriptor"]["Location"])
                      for p in (partition.as_dict() for partition in found.partitions.values())]
        return SourceTable(database, name, descriptor.get("Location", ""),
                           [(c["Name"].lower(), c.get("Type", "string").lower()) for c in descriptor.get("Columns", [])],
                           keys, dict(table.get("Parameters", {})), partitions)

    @staticmethod
    def _materialise(con: Any, s3: Any, source: SourceTable, view: str, directory: Path, wanted: dict[str, str],
                     allows: Allows) -> int:
        """Copy the objects the query reads into `directory` and define `view` over them; returns bytes read."""
        directory.mkdir(parents=True)
        files: list[tuple[Path, dict[str, str]]] = []
        scanned = 0
        for bucket, prefix, pinned in source.prefixes({k: v for k, v in wanted.items() if k in source.partition_keys}):
            for key, obj in sorted(s3.get_bucket(bucket).keys.items()):
                if not key.startswith(prefix) or key.endswith("/"):
                    continue
                values = pinned or {}
                if source.projected:
                    projected = source.projected_values(key)
                    if projected is None or any(projected.get(k) != v for k, v in values.items()):
                        continue
                    values = projected
                if not allows("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"):
                    raise QueryFailed(f"Permission denied on S3 path: s3://{bucket}/{key}")
                body = obj.value
                scanned += len(body)
                path = directory / f"{len(files)}.json"
                path.write_bytes(body)
                files.append((path, values))
        columns = {name: _TYPES.get(kind, "VARCHAR") for name, kind in source.columns}
        if not files:
            # Athena reads no rows from no objects; the view still has the table's columns.
            empty = ", ".join([*(f"NULL::{kind} AS {name}" for name, kind in columns.items()),
                               *(f"NULL::VARCHAR AS {k}" for k in source.partition_keys)])
            con.sql(f"CREATE VIEW {view} AS SELECT {empty} WHERE false")
            return 0
        spec = json.dumps(columns).replace('"', "'")
        parts = []
        for path, values in files:
            literals = "".join(f", '{values.get(k, '')}'::VARCHAR AS {k}" for k in source.partition_keys)
            parts.append(f"SELECT *{literals} FROM read_json('{path}', "
                         f"format = 'newline_delimited', columns = {spec}, ignore_errors = true)")
        con.sql(f"CREATE VIEW {view} AS {' UNION ALL '.join(parts)}")
        return scanned

    @staticmethod
    def _register(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
                  partitioned_by: list[str], written: list[Path], out_dir: Path, account: str, region: str,
                  allows: Allows) -> None:
        data = [c for c in columns if c[0] not in partitioned_by]
        parquet = {"InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                   "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                   "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}
        glue.create_table(database, table, {
            "Name": table, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "parquet.compression": "SNAPPY"},
            "PartitionKeys": [{"Name": c, "Type": "string"} for c in partitioned_by],
            "StorageDescriptor": {"Location": location,
                                  "Columns": [{"Name": n, "Type": _GLUE_TYPES.get(k, "string")} for n, k in data],
                                  **parquet}})
        if not partitioned_by:
            return
        if not allows("glue:BatchCreatePartition", f"arn:aws:glue:{region}:{account}:table/{database}/{table}"):
            raise QueryFailed(f"AccessDeniedException: not authorized to perform glue:BatchCreatePartition on "
                              f"{database}.{table}")
        directories = sorted({path.parent.relative_to(out_dir).as_posix() for path in written})
        glue.batch_create_partition(database, table, [
            {"Values": [part.split("=", 1)[1] for part in directory.split("/")],
             "StorageDescriptor": {"Location": location.rstrip("/") + f"/{directory}/", **parquet}}
            for directory in directories])


# DuckDB type -> the type Athena's ResultSetMetadata names.
_ATHENA_TYPES = {"VARCHAR": "varchar", "BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double",
                 "FLOAT": "float", "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "DATE": "date",
                 "HUGEINT": "decimal", "SMALLINT": "smallint", "TINYINT": "tinyint"}


_KEYWORDS_AFTER_FROM = frozenset({"unnest", "lateral", "select", "values", "table"})
_FUNCTION_CALL = re.compile(r"(\w+)\s*$")


def _mask_literals(sql: str) -> str:
    """``sql`` with every string literal's content blanked (same length), so words in it are not SQL."""
    return re.sub(r"'(?:[^']|'')*'", lambda m: "'" + " " * (len(m.group(0)) - 2) + "'", sql)


def _introduces_table(masked: str, match: re.Match[str]) -> bool:
    """Whether this FROM or JOIN names a table: not inside a literal, not ``IS DISTINCT FROM``, not
    the FROM of a function's arguments (``EXTRACT(year FROM ts)``, ``substring(s FROM 2)``), not UNNEST."""
    start = match.start()
    if masked[start:match.end()] != match.string[start:match.end()]:
        return False
    if re.search(r"\bDISTINCT\s*$", masked[:start], re.IGNORECASE):
        return False
    if (match.group("utable") or "").lower() in _KEYWORDS_AFTER_FROM:
        return False
    depth, position = 0, start - 1
    while position >= 0:  # the innermost open parenthesis before the FROM
        char = masked[position]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:  # a subquery's FROM names a table; a function's argument list's does not
                if re.match(r"\s*(SELECT|WITH)\b", masked[position + 1:], re.IGNORECASE):
                    return True
                return _FUNCTION_CALL.search(masked[:position]) is None
            depth -= 1
        position -= 1
    return True


def _athena_type(duck: str) -> str:
    return _ATHENA_TYPES.get(duck.split("(")[0], "decimal" if duck.startswith("DECIMAL") else "varchar")


def _text(value: Any) -> str | None:
    """A value as Athena's results carry it: text (true/false, ISO-like timestamps), None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


ENGINE = AthenaEngine()
