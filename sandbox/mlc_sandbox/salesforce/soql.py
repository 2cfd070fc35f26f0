"""The SOQL subset the stand-in answers: SELECT fields (with one level of parent fields) or COUNT() / COUNT(field)
FROM one object, WHERE with AND/OR/NOT, comparisons, IN, LIKE, null, date and datetime literals, ORDER BY, LIMIT,
OFFSET. Errors carry Salesforce's codes and texts (MALFORMED_QUERY with the row/column pointer, INVALID_FIELD,
INVALID_TYPE)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable

from . import ids
from .schema import NUMBER_TYPES, OBJECTS, Field, SObject, find_object
from .values import parse_date, parse_datetime

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?|[+-]?\.\d+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\", "%": "\\%",
            "_": "\\_"}
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST",
            "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "GROUP", "HAVING", "WITH", "FOR", "USING", "TYPEOF"}
DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
NO_SUCH_COLUMN_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
                       "name. Please reference your WSDL or the describe call for the appropriate names.")


class QueryError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Token:
    kind: str  # datetime, date, number, string, name, op, punct, end
    text: str
    column: int  # 1-based, as Salesforce counts

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass
class FieldPath:
    """`Name` or `Account.IFS_Customer_Id__c`: the field read, reached through `relationship` if any."""
    field: Field
    relationship: Field | None = None  # the reference field on the queried object
    parent: SObject | None = None

    @property
    def key(self) -> tuple:
        return (self.relationship.name if self.relationship else None, self.field.name)


@dataclass
class Count:
    """`COUNT()` (field None) or `COUNT(field) [alias]` in the SELECT list."""
    token: Token
    field: Token | None
    alias: Token | None


@dataclass
class Query:
    sobject: SObject
    fields: list[FieldPath]
    condition: Callable[[dict], bool] | None
    order: list[tuple[FieldPath, bool, bool]]  # (path, descending, nulls first)
    limit: int | None
    offset: int
    count_only: bool = False  # SELECT COUNT(): the answer is totalSize alone
    aggregates: list[tuple[str, FieldPath]] | None = None  # SELECT COUNT(field) [alias], ...: one AggregateResult row

    def aggregate(self, rows: list[dict]) -> dict:
        """The AggregateResult row of COUNT(field) items: rows with a value in the field, under the alias or the
        implied exprN name."""
        result = {"attributes": {"type": "AggregateResult"}}
        for alias, path in self.aggregates or []:
            read = reader(path)
            result[alias] = sum(1 for row in rows if read(row) is not None)
        return result


def _tokens(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _malformed(text, position + 1, text[position])
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "<EOF>", len(text) + 1))
    return tokens


def _pointer(text: str, column: int) -> str:
    line = " ".join(text.split("\n"))
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n"


def _malformed(text: str, column: int, token: str) -> QueryError:
    return QueryError("MALFORMED_QUERY", f"{_pointer(text, column)}unexpected token: {token}")


def _unquote(literal: str) -> str:
    out, index, body = [], 0, literal[1:-1]
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(_ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str, now: datetime):
        self.text, self.now = text, now
        self.tokens = _tokens(text)
        self.position = 0
        self.sobject: SObject | None = None

    # token helpers
    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.current
        self.position += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        return self.current.kind == "name" and self.current.upper in words

    def expect_keyword(self, word: str) -> Token:
        if not self.is_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.current.text != char or self.current.kind != "punct":
            raise self.unexpected()
        return self.advance()

    def unexpected(self, token: Token | None = None) -> QueryError:
        token = token or self.current
        return _malformed(self.text, token.column, token.text)

    # grammar
    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        raw_fields = [self.select_item()]
        while self.current.text == "," and self.current.kind == "punct":
            if isinstance(raw_fields[0], Count) and raw_fields[0].field is None:  # COUNT() stands alone
                raise self.unexpected()
            self.advance()
            item = self.select_item()
            if isinstance(item, Count) and item.field is None:
                raise self.unexpected(item.token)
            raw_fields.append(item)
        self.expect_keyword("FROM")
        object_token = self.advance()
        # the object name is whatever follows FROM: `Order` is a standard object although ORDER is a keyword
        if object_token.kind != "name" or "." in object_token.text or ":" in object_token.text or \
                (object_token.upper in KEYWORDS and find_object(object_token.text) is None):
            raise self.unexpected(object_token)
        sobject = find_object(object_token.text)
        if sobject is None:
            raise QueryError("INVALID_TYPE", f"{_pointer(self.text, object_token.column)}sObject type "
                                             f"'{object_token.text}' is not supported. If you are attempting to use a "
                                             f"custom object, be sure to append the '__c' after the entity name. "
                                             f"Please reference your WSDL or the describe call for the appropriate "
                                             f"names.")
        self.sobject = sobject
        fields, seen, aggregates = [], set(), []
        count_only = isinstance(raw_fields[0], Count) and raw_fields[0].field is None
        unnamed = 0  # an aggregate without an alias is named expr0, expr1, ... in the order of the SELECT list
        for item in raw_fields if not count_only else []:
            if isinstance(item, Count):
                if item.alias is None:
                    alias, unnamed = f"expr{unnamed}", unnamed + 1
                else:
                    alias = item.alias.text
                aggregates.append((alias, self.resolve(item.field)))
                continue
            path = self.resolve(item)
            if path.key in seen:
                raise QueryError("MALFORMED_QUERY", f"duplicate field selected: {item.text}")
            seen.add(path.key)
            fields.append(path)
        if aggregates and fields:  # no GROUP BY here: every selected field would have to be aggregated
            raise QueryError("MALFORMED_QUERY", f"Field must be grouped or aggregated: {fields[0].field.name}")
        condition = None
        if self.is_keyword("WHERE"):
            self.advance()
            condition = self.condition()
        order = []
        if self.is_keyword("ORDER"):
            if count_only:  # SOQL: COUNT() cannot be used with ORDER BY
                raise self.unexpected()
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.current.text == "," and self.current.kind == "punct":
                self.advance()
                order.append(self.order_item())
            if aggregates:
                raise QueryError("MALFORMED_QUERY", f"Ordered field must be grouped or aggregated: "
                                                    f"{order[0][0].field.name}")
        limit = offset = None
        if self.is_keyword("LIMIT"):
            self.advance()
            limit = self.whole_number()
        if self.is_keyword("OFFSET"):
            self.advance()
            offset = self.whole_number()
            if offset > 2000:
                raise QueryError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        if self.current.kind != "end":
            raise self.unexpected()
        return Query(sobject, fields, condition, order, limit, offset or 0, count_only=count_only,
                     aggregates=aggregates or None)

    def select_item(self) -> "Token | Count":
        """A field of the SELECT list, or COUNT() / COUNT(field) [alias] (the one function served)."""
        token = self.current
        if token.kind == "name" and self.tokens[self.position + 1].text == "(":
            if token.upper != "COUNT":  # FIELDS(ALL), SUM(...), other functions: not served
                raise self.unexpected(self.tokens[self.position + 1])
            self.advance()
            self.expect_punct("(")
            if self.current.kind == "punct" and self.current.text == ")":
                self.advance()
                return Count(token, None, None)
            field = self.field_name()
            self.expect_punct(")")
            alias = None
            if self.current.kind == "name" and self.current.upper not in KEYWORDS and "." not in self.current.text:
                alias = self.advance()
            return Count(token, field, alias)
        return self.field_name()

    def whole_number(self) -> int:
        token = self.advance()
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected(token)
        return int(token.text)

    def field_name(self) -> Token:
        token = self.advance()
        if token.kind != "name" or token.upper in KEYWORDS or ":" in token.text:
            raise self.unexpected(token)
        if self.current.text == "(":  # COUNT(), FIELDS(ALL), aggregates: not served
            raise self.unexpected()
        return token

    def resolve(self, token: Token) -> FieldPath:
        sobject = self.sobject
        parts = token.text.split(".")
        if len(parts) > 1 and parts[0].lower() == sobject.name.lower() and \
                parts[0].lower() not in sobject.by_relationship:
            parts = parts[1:]
        if len(parts) == 1:
            field = sobject.field(parts[0])
            if field is None:
                raise QueryError("INVALID_FIELD", f"{_pointer(self.text, token.column)}No such column '{parts[0]}' on "
                                                  f"entity '{sobject.name}'. {NO_SUCH_COLUMN_HINT}")
            return FieldPath(field)
        relationship = sobject.by_relationship.get(parts[0].lower())
        if relationship is None or len(parts) > 2:
            raise QueryError("INVALID_FIELD", f"{_pointer(self.text, token.column)}Didn't understand relationship "
                                              f"'{parts[0] if relationship is None else parts[1]}' in field path. If "
                                              f"you are attempting to use a custom relationship, be sure to append "
                                              f"the '__r' after the custom relationship name. Please reference your "
                                              f"WSDL or the describe call for the appropriate names.")
        parent = OBJECTS[relationship.reference_to[0]]
        field = parent.field(parts[1])
        if field is None:
            raise QueryError("INVALID_FIELD", f"{_pointer(self.text, token.column)}No such column '{parts[1]}' on "
                                              f"entity '{parent.name}'. {NO_SUCH_COLUMN_HINT}")
        return FieldPath(field, relationship, parent)

    def order_item(self) -> tuple[FieldPath, bool, bool]:
        path = self.resolve(self.field_name())
        descending = False
        if self.is_keyword("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_first = not descending
        if self.is_keyword("NULLS"):
            self.advance()
            if not self.is_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().upper == "FIRST"
        return path, descending, nulls_first

    def condition(self) -> Callable[[dict], bool]:
        terms = [self.term()]
        joiner = None
        while self.is_keyword("AND", "OR"):
            word = self.current.upper
            if joiner is not None and word != joiner:  # SOQL wants parentheses when AND and OR mix
                raise self.unexpected()
            joiner = word
            self.advance()
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        if joiner == "AND":
            return lambda row: all(term(row) for term in terms)
        return lambda row: any(term(row) for term in terms)

    def term(self) -> Callable[[dict], bool]:
        if self.is_keyword("NOT"):
            self.advance()
            inner = self.term()
            return lambda row: not inner(row)
        if self.current.kind == "punct" and self.current.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[dict], bool]:
        path = self.resolve(self.field_name())
        read = reader(path)
        field = path.field
        if self.is_keyword("IN", "NOT"):
            negate = self.advance().upper == "NOT"
            if negate:
                self.expect_keyword("IN")
            self.expect_punct("(")
            literals = [self.literal(field)]
            while self.current.text == "," and self.current.kind == "punct":
                self.advance()
                literals.append(self.literal(field))
            self.expect_punct(")")
            wanted = {normalize(field, value) for value in literals if not isinstance(value, _Range)}
            if negate:
                return lambda row: normalize(field, read(row)) not in wanted
            return lambda row: normalize(field, read(row)) in wanted
        if self.is_keyword("LIKE"):
            self.advance()
            token = self.advance()
            if token.kind != "string":
                raise self.unexpected(token)
            pattern = _like_pattern(_unquote(token.text))
            return lambda row: (value := read(row)) is not None and pattern.match(str(value)) is not None
        operator = self.advance()
        if operator.kind != "op":
            raise self.unexpected(operator)
        op = "!=" if operator.text == "<>" else operator.text
        value = self.literal(field)
        return _compare(field, read, op, value)

    def literal(self, field: Field):
        token = self.advance()
        kind = field.type
        wrong = lambda expected, quoted: QueryError(  # noqa: E731
            "INVALID_FIELD", f"{_pointer(self.text, token.column)}value of filter criterion for field '{field.name}' "
                             f"must be of type {expected} and {'should' if quoted else 'should not'} be enclosed in "
                             f"quotes")
        if token.kind == "name" and token.upper == "NULL":
            return None
        if kind in ("date", "datetime") and token.kind == "name":
            literal_range = self.date_literal(token)
            if literal_range is not None:
                return literal_range if kind == "datetime" else _Range(literal_range.start.date(),
                                                                      literal_range.end.date())
        if kind == "datetime":
            if token.kind != "datetime":
                raise wrong("dateTime", False)
            return parse_datetime(token.text)
        if kind == "date":
            if token.kind != "date":
                raise wrong("date", False)
            value = parse_date(token.text)
            if value is None:
                raise self.unexpected(token)
            return value
        if kind == "boolean":
            if token.kind != "name" or token.upper not in ("TRUE", "FALSE"):
                raise wrong("boolean", False)
            return token.upper == "TRUE"
        if kind in NUMBER_TYPES:
            if token.kind != "number":
                raise wrong("double", False)
            return float(token.text)
        if token.kind != "string":
            if token.kind in ("name", "op", "punct", "end"):
                raise self.unexpected(token)
            raise wrong("string", True)
        text = _unquote(token.text)
        if kind in ("id", "reference"):
            if not ids.well_formed(text):
                raise QueryError("INVALID_QUERY_FILTER_OPERATOR", f"{_pointer(self.text, token.column)}invalid ID "
                                                                  f"field: {text}")
        return text

    def date_literal(self, token: Token) -> "_Range | None":
        name, _, count = token.upper.partition(":")
        start_of_today = datetime.combine(self.now.date(), time(), timezone.utc)
        day = timedelta(days=1)
        if name == "TODAY" and not count:
            return _Range(start_of_today, start_of_today + day)
        if name == "YESTERDAY" and not count:
            return _Range(start_of_today - day, start_of_today)
        if name == "TOMORROW" and not count:
            return _Range(start_of_today + day, start_of_today + 2 * day)
        if name == "LAST_N_DAYS" and count:
            return _Range(start_of_today - int(count) * day, start_of_today + day)
        if name == "NEXT_N_DAYS" and count:
            return _Range(start_of_today + day, start_of_today + (int(count) + 1) * day)
        raise self.unexpected(token)


@dataclass
class _Range:
    """A date literal: [start, end)."""
    start: object
    end: object


def reader(path: FieldPath) -> Callable[[dict], object]:
    """How to read the path's value from a row (parents looked up in the org at evaluation time)."""
    name = path.field.name
    if path.relationship is None:
        return lambda row: row[name]
    relationship = path.relationship.name

    def read(row: dict):
        parent_row = row.get("__parents__", {}).get(relationship)
        return parent_row[name] if parent_row is not None else None

    return read


def normalize(field: Field, value):
    """Text compares case-insensitively in SOQL; ids in their 18-character form."""
    if value is None:
        return None
    if field.type in ("id", "reference"):
        return ids.lookup_key(value) if ids.well_formed(value) else value.lower()
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(field: Field, read, op: str, value) -> Callable[[dict], bool]:
    if isinstance(value, _Range):
        start, end = value.start, value.end
        tests = {"=": lambda v: start <= v < end, "!=": lambda v: not start <= v < end, "<": lambda v: v < start,
                 "<=": lambda v: v < end, ">": lambda v: v >= end, ">=": lambda v: v >= start}
        test = tests[op]
        return lambda row: (v := read(row)) is not None and test(v)
    if value is None:
        if op == "=":
            return lambda row: read(row) is None
        if op == "!=":
            return lambda row: read(row) is not None
        return lambda row: False
    wanted = normalize(field, value)
    if op == "=":
        return lambda row: normalize(field, read(row)) == wanted
    if op == "!=":
        return lambda row: normalize(field, read(row)) != wanted
    compare = {"<": lambda a: a < wanted, "<=": lambda a: a <= wanted, ">": lambda a: a > wanted,
               ">=": lambda a: a >= wanted}[op]
    return lambda row: (v := normalize(field, read(row))) is not None and compare(v)


def _like_pattern(pattern: str) -> re.Pattern:
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def parse(text: str, now: datetime) -> Query:
    if not text or not text.strip():
        raise QueryError("MALFORMED_QUERY", "A query string has to be specified")
    return _Parser(text, now).parse()


def _sort(rows: list[dict], order: list[tuple[FieldPath, bool, bool]]) -> list[dict]:
    for path, descending, nulls_first in reversed(order):
        read = reader(path)
        present = [row for row in rows if read(row) is not None]
        absent = [row for row in rows if read(row) is None]
        present.sort(key=lambda row: normalize(path.field, read(row)), reverse=descending)
        rows = absent + present if nulls_first else present + absent
    return rows


def run(query: Query, rows: list[dict], parents: Callable[[str, str], dict | None]) -> list[dict]:
    """The matching rows, each with its parents attached under `__parents__` (relationship name -> row)."""
    # fields, conditions and ordering may read parents: attach every relationship of the object (a lookup each)
    relationships = [f for f in query.sobject.fields if f.relationship_name]
    prepared = []
    for row in rows:
        attached = {}
        for relationship in relationships:
            reference = row.get(relationship.name)
            attached[relationship.name] = parents(relationship.reference_to[0], reference) if reference else None
        prepared.append({**row, "__parents__": attached})
    if query.condition is not None:
        prepared = [row for row in prepared if query.condition(row)]
    prepared = _sort(prepared, query.order) if query.order else prepared
    if query.aggregates:  # LIMIT and OFFSET apply to the aggregated rows, not to the rows counted
        return prepared
    end = None if query.limit is None else query.offset + query.limit
    return prepared[query.offset:end]
