"""CloudWatch Logs Insights queries, run for real over the log events the sandbox holds.

moto's StartQuery only lists events (no filter, no stats); the shims route it here. Supported:
the commands ``fields``, ``display``, ``filter``, ``stats``, ``sort`` and ``limit``, piped with
``|``; fields discovered from JSON log events (nested keys joined with dots, e.g.
``record.metrics.durationMs``) plus ``@timestamp``, ``@message``, ``@log`` (``account:group``)
and ``@logStream``; ``and``, ``or``, ``not``, comparisons (``= != < <= > >=``, numeric when both
sides are numbers), ``like``/``=~`` a ``/regex/`` or a substring, ``in [...]``; the functions
``ispresent``, ``isempty``, ``tolower``, ``toupper``, ``strlen``; the aggregations ``count``,
``count_distinct``, ``sum``, ``avg``, ``min``, ``max``, ``pct`` grouped ``by`` fields and
``bin(<n><unit>)`` (units ms to weeks). Anything else (``parse``, ``dedup``, other functions) is refused with
``MalformedQueryException`` naming it, rather than answered wrongly
(docs/emulation-gaps.md).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT = 10_000  # what a query without limit returns at most
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<regex>/(?:[^/\\]|\\.)+/)
    | (?P<number>-?\d+(?:\.\d+)?(?:msecs?|ms|secs?|s|mins?|m|hrs?|h|d|w)?(?![\w.]))
    | (?P<backtick>`[^`]+`)
    | (?P<op><=|>=|!=|=~|[=<>(),\[\]*|])
    | (?P<name>[@A-Za-z_][\w.@-]*)
    )""", re.VERBOSE)
_PERIODS_MS = {"ms": 1, "msec": 1, "msecs": 1, "s": 1000, "sec": 1000, "secs": 1000, "m": 60_000, "min": 60_000,
               "mins": 60_000, "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "d": 86_400_000,
               "w": 604_800_000}
_AGGREGATES = {"count", "count_distinct", "sum", "avg", "min", "max", "pct"}


class MalformedQuery(ValueError):
    """The query is not valid, or uses what this engine does not run."""


@dataclass(frozen=True)
class LogRecord:
    timestamp_ms: int
    message: str
    group: str
    stream: str
    account: str

    def fields(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        found: dict[str, Any] = {
            "@timestamp": moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}",
            "@message": self.message, "@log": f"{self.account}:{self.group}", "@logStream": self.stream,
            "@epoch_ms": self.timestamp_ms,
        }
        try:
            document = json.loads(self.message)
        except ValueError:
            return found
        if isinstance(document, dict):
            _flatten(document, "", found)
        return found


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}{key}.", into)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _flatten(inner, f"{prefix}{index}.", into)
    else:
        into[prefix[:-1]] = value


# --- tokens and expressions ------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def _tokens(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise MalformedQuery(f"unexpected character at {position}: {text[position:position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    return tokens


Expr = Callable[[dict[str, Any]], Any]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _compare(op: str, left: Any, right: Any) -> bool:
    """Numbers compare as numbers (also when logged as strings), anything else as text."""
    if left is None or right is None:
        return False
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return _COMPARISONS[op](str(left), str(right))
    return _COMPARISONS[op](a, b)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise MalformedQuery("the query ends too early")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text.lower() == text:
            self.at += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            found = self.peek()
            raise MalformedQuery(f"expected {text!r}, found {found.text if found else 'the end'!r}")

    def done(self) -> bool:
        return self.peek() is None

    def expression(self) -> Expr:
        return self._chain("or", self.conjunction, any)

    def conjunction(self) -> Expr:
        return self._chain("and", self.negation, all)

    def _chain(self, keyword: str, operand: Callable[[], Expr], combine: Callable[[Iterator[bool]], bool]) -> Expr:
        """``operand (keyword operand)*``, evaluated left to right with short-circuiting."""
        operands = [operand()]
        while self.accept(keyword):
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return lambda row: combine(bool(o(row)) for o in operands)

    def negation(self) -> Expr:
        if self.accept("not"):
            inner = self.negation()
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token is None:
            return left
        op = token.text.lower()
        if op in ("=", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.operand()
            return lambda row: _compare(op, left(row), right(row))
        negate = op == "not" and (self.peek(1) is not None and self.peek(1).text.lower() in ("like", "in"))  # type: ignore[union-attr]
        if negate:
            self.take()
            op = self.peek().text.lower()  # type: ignore[union-attr]
        if op in ("like", "=~"):
            self.take()
            pattern = self.take()
            if pattern.kind == "regex":
                regex = re.compile(pattern.text[1:-1])
                test = lambda row: (v := left(row)) is not None and bool(regex.search(str(v)))
            elif pattern.kind == "string":
                needle = json.loads(pattern.text) if pattern.text[0] == '"' else pattern.text[1:-1]
                test = lambda row: (v := left(row)) is not None and needle in str(v)
            else:
                raise MalformedQuery(f"like needs a /regex/ or a string, not {pattern.text!r}")
            return (lambda row: not test(row)) if negate else test
        if op == "in":
            self.take()
            self.expect("[")
            values = [self.operand()]
            while self.accept(","):
                values.append(self.operand())
            self.expect("]")
            member = lambda row: any(_compare("=", left(row), v(row)) for v in values)
            return (lambda row: not member(row)) if negate else member
        return left

    def operand(self) -> Expr:
        token = self.take()
        if token.kind == "string":
            text = json.loads(token.text) if token.text[0] == '"' else token.text[1:-1]
            return lambda row: text
        if token.kind == "number":
            if not token.text[-1].isdigit():
                raise MalformedQuery(f"a period such as {token.text!r} is only valid in bin()")
            value = float(token.text) if "." in token.text else int(token.text)
            return lambda row: value
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.kind == "backtick":
            name = token.text[1:-1]
            return lambda row: row.get(name)
        if token.kind == "name":
            if self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                return self.function(token.text.lower())
            name = token.text
            return lambda row: row.get(name)
        raise MalformedQuery(f"unexpected {token.text!r}")

    def function(self, name: str) -> Expr:
        self.expect("(")
        argument = self.operand()
        self.expect(")")
        scalar: dict[str, Callable[[Any], Any]] = {
            "ispresent": lambda v: v is not None,
            "isempty": lambda v: v is None or v == "",
            "tolower": lambda v: None if v is None else str(v).lower(),
            "toupper": lambda v: None if v is None else str(v).upper(),
            "strlen": lambda v: None if v is None else len(str(v)),
        }
        if name not in scalar:
            raise MalformedQuery(f"the function {name}() is not supported by the sandbox's Logs Insights")
        apply = scalar[name]
        return lambda row: apply(argument(row))


# --- commands ----------------------------------------------------------------------------------

@dataclass
class _Aggregate:
    name: str
    function: str
    argument: Expr | None
    percentile: float = 0.0

    def value(self, rows: list[dict[str, Any]]) -> Any:
        if self.function == "count":
            return len(rows) if self.argument is None else sum(1 for r in rows if self.argument(r) is not None)
        values = [self.argument(r) for r in rows] if self.argument else []
        present = [v for v in values if v is not None]
        if self.function == "count_distinct":
            return len({json.dumps(v, sort_keys=True, default=str) for v in present})
        numbers = sorted(n for n in map(_number, present) if n is not None)
        if not numbers:
            return None
        if self.function == "sum":
            return sum(numbers)
        if self.function == "avg":
            return sum(numbers) / len(numbers)
        if self.function == "min":
            return numbers[0]
        if self.function == "max":
            return numbers[-1]
        rank = max(0, math.ceil(self.percentile / 100 * len(numbers)) - 1)  # pct: nearest rank
        return numbers[min(rank, len(numbers) - 1)]


@dataclass
class _Group:
    name: str
    key: Callable[[dict[str, Any]], Any]


@dataclass
class Query:
    steps: list[Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = field(default_factory=list)
    shown: list[str] | None = None  # fields/display: these fields of each row
    aggregated: bool = False        # stats: every field of the aggregated rows
    limit: int = DEFAULT_LIMIT


def _text(tokens: list[Token]) -> str:
    """A default result field name, written the way Insights writes it: ``pct(x, 95)``."""
    out = ""
    for token in tokens:
        if token.text in ("(", ")", ",") or out.endswith("("):
            out += token.text
        else:
            out += (" " if out else "") + token.text
    return out.replace(",", ", ")


def _result_name(parser: _Parser, start: int) -> str:
    """The name of what the tokens from ``start`` computed: its ``as`` alias, or its own text."""
    text = _text(parser.tokens[start:parser.at])
    return parser.take().text if parser.accept("as") else text


def _named_list(parser: _Parser) -> list[tuple[str, Expr]]:
    named = []
    while True:
        start = parser.at
        expr = parser.operand()
        named.append((_result_name(parser, start), expr))
        if not parser.accept(","):
            return named


def _stats(parser: _Parser) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    aggregates: list[_Aggregate] = []
    while True:
        start = parser.at
        function = parser.take().text.lower()
        if function not in _AGGREGATES:
            raise MalformedQuery(f"stats: {function!r} is not an aggregation the sandbox runs")
        parser.expect("(")
        argument: Expr | None = None
        percentile = 0.0
        if not parser.accept("*"):
            argument = parser.operand()
        if function == "pct":
            parser.expect(",")
            percentile = float(parser.take().text)
        parser.expect(")")
        aggregates.append(_Aggregate(_result_name(parser, start), function, argument, percentile))
        if not parser.accept(","):
            break
    groups: list[_Group] = []
    if parser.accept("by"):
        while True:
            start = parser.at
            if parser.peek() is not None and parser.peek().text.lower() == "bin":  # type: ignore[union-attr]
                parser.take()
                parser.expect("(")
                period = parser.take().text
                unit = re.fullmatch(r"(\d+)([a-z]+)", period)
                if unit and unit.group(2) not in _PERIODS_MS:
                    unit = None
                if not unit:
                    raise MalformedQuery(f"bin() needs a period like 5m, not {period!r}")
                width = int(unit.group(1)) * _PERIODS_MS[unit.group(2)]
                parser.expect(")")
                key: Callable[[dict[str, Any]], Any] = (
                    lambda row, w=width: _format_epoch(row["@epoch_ms"] // w * w))
            else:
                key = parser.operand()
            groups.append(_Group(_result_name(parser, start), key))
            if not parser.accept(","):
                break

    def run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        buckets: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        keys: dict[tuple[str, ...], list[Any]] = {}
        for row in rows:
            values = [g.key(row) for g in groups]  # a missing field groups as null
            marker = tuple(json.dumps(v, default=str) for v in values)
            buckets.setdefault(marker, []).append(row)
            keys.setdefault(marker, values)
        if not groups:
            buckets = {(): rows}
            keys = {(): []}
        result = []
        for marker, members in buckets.items():
            out = {g.name: v for g, v in zip(groups, keys[marker], strict=True)}
            for aggregate in aggregates:
                out[aggregate.name] = aggregate.value(members)
            result.append(out)
        return result

    return run


def _format_epoch(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _sort_key(value: Any) -> tuple[int, Any]:
    number = _number(value)
    if number is not None:
        return (1, number)
    return (2, str(value)) if value is not None else (0, "")


def _sort(parser: _Parser) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    order: list[tuple[str, bool]] = []
    while True:
        token = parser.take()
        name = token.text[1:-1] if token.kind == "backtick" else token.text
        descending = parser.accept("desc")
        if not descending:
            parser.accept("asc")
        order.append((name, descending))
        if not parser.accept(","):
            break

    def run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for name, descending in reversed(order):  # stable sorts, last key first
            rows = sorted(rows, key=lambda r, n=name: _sort_key(r.get(n)), reverse=descending)
        return rows

    return run


def parse(text: str) -> Query:
    """The query as steps over rows of fields; MalformedQuery when it cannot run here."""
    query = Query()
    for part in _split_commands(text):
        tokens = _tokens(part)
        if not tokens:
            raise MalformedQuery("empty command between pipes")
        command = tokens[0].text.lower()
        parser = _Parser(tokens[1:])
        if command in ("fields", "display"):
            named = _named_list(parser)
            query.steps.append(lambda rows, n=named: [{**r, **{k: e(r) for k, e in n if k not in r}} for r in rows])
            query.shown, query.aggregated = [name for name, _ in named], False
        elif command == "filter":
            predicate = parser.expression()
            query.steps.append(lambda rows, p=predicate: [r for r in rows if p(r)])
        elif command == "stats":
            query.steps.append(_stats(parser))
            query.shown, query.aggregated = None, True
        elif command == "sort":
            query.steps.append(_sort(parser))
        elif command == "limit":
            query.limit = int(parser.take().text)
        else:
            raise MalformedQuery(f"the command {command!r} is not supported by the sandbox's Logs Insights")
        if not parser.done():
            raise MalformedQuery(f"{command}: unexpected {parser.peek().text!r}")  # type: ignore[union-attr]
    return query


def _split_commands(text: str) -> Iterator[str]:
    """The query's commands: split at ``|`` outside strings, regexes and backticks."""
    current, quote = [], ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "\"'`/":
            quote = char
        if char == "|":
            yield "".join(current).strip()
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        yield "".join(current).strip()


def run(query_text: str, records: Iterable[LogRecord]) -> list[dict[str, Any]]:
    """Rows of the query's result (field → value), at most its limit."""
    query = parse(query_text)
    rows = [record.fields() for record in records]
    rows.sort(key=lambda r: r["@epoch_ms"], reverse=True)  # newest first unless sorted
    for step in query.steps:
        rows = step(rows)
    rows = rows[:query.limit]
    if query.shown is not None:
        return [{name: row[name] for name in query.shown if row.get(name) is not None} for row in rows]
    if query.aggregated:
        return [{k: v for k, v in row.items() if v is not None} for row in rows]
    return [{"@timestamp": row["@timestamp"], "@message": row["@message"]} for row in rows]
