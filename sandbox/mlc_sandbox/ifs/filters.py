"""OData `$filter` → parameterised SQLite, typed against one entity.

Parsing is odata-query's (a third-party grammar, so our own client syntax is checked by code nobody here wrote);
this module only gives the parsed tree IFS meaning: property types, enum literals, time zones, exact decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from decimal import Decimal

from odata_query import ast
from odata_query import exceptions as odata_errors
from odata_query.grammar import ODataLexer, ODataParser
from odata_query.visitor import NodeVisitor

from . import model
from .store import quote


class FilterError(ValueError):
    """A $filter that IFS would answer with 400 "Malformed Request."; the message names the problem."""


ENUM_SENTINEL = "\x01"
_QUALIFIED_LITERAL = re.compile(r"[A-Za-z_][\w.]*")


def resolve_enum_literals(text: str, service: model.Service) -> str:
    """Turn `IfsApp.<Projection>.<EnumType>'Value'` into a string literal the grammar knows, remembering its type.

    odata-query has no enum literals; the marker keeps the type so a literal of the wrong enum is still refused.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
            continue
        if (ch.isalpha() or ch == "_") and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
            match = _QUALIFIED_LITERAL.match(text, i)
            name = match.group(0)
            end = match.end()
            if end < n and text[end] == "'" and "." in name:
                namespace, _, type_name = name.rpartition(".")
                if namespace != service.namespace or type_name not in service.enum_types:
                    raise FilterError(f"Unknown enumeration type '{name}'")
                literal_end = _string_end(text, end)
                value = text[end + 1 : literal_end - 1].replace("''", "'")
                if value not in service.enum_types[type_name].members:
                    raise FilterError(f"'{value}' is not a member of enumeration type '{name}'")
                out.append("'" + f"{ENUM_SENTINEL}{type_name}{ENUM_SENTINEL}{value}".replace("'", "''") + "'")
                i = literal_end
                continue
            out.append(name)
            i = end
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise FilterError("Unterminated string literal")


# --- typed intermediate values ------------------------------------------------------------------------------------


@dataclass
class Column:
    field: model.Field

    @property
    def sql(self) -> str:
        return quote(self.field.name)


@dataclass
class StringExpr:
    """A computed string such as tolower(Name)."""

    sql: str
    params: list


@dataclass
class NumberExpr:
    """A computed integer such as length(Name)."""

    sql: str
    params: list


@dataclass
class Condition:
    sql: str
    params: list
    # the lowest value each column can have where this holds; lets a seek filter use the index range
    lower_bounds: dict[str, object] = field(default_factory=dict)


_COMPARATORS = {ast.Eq: "=", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class TimeRules:
    """How DateTimeOffset literals are read: a time-zone-aware request takes them as given (no offset = UTC);
    otherwise IFS reads the wall-clock time in the tenant's zone and ignores any offset."""

    utc: bool
    zone: tzinfo

    def epoch(self, literal: str) -> int | float:
        try:
            moment = datetime.fromisoformat(literal)
        except ValueError as exc:
            raise FilterError(f"Invalid DateTimeOffset literal '{literal}'") from exc
        if self.utc:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        else:
            moment = moment.replace(tzinfo=self.zone)
        stamp = moment.timestamp()
        return int(stamp) if stamp == int(stamp) else stamp


class _Translator(NodeVisitor):
    def __init__(self, entity: model.Entity, rules: TimeRules):
        self.entity = entity
        self.rules = rules

    # leaves

    def visit_Identifier(self, node: ast.Identifier):
        if node.namespace:
            raise FilterError(f"Unknown property '{node.full_name()}'")
        f = self.entity.field_by_name.get(node.name)
        if f is None:
            qualified = f"{self.entity.namespace}.{self.entity.type_name}"
            raise FilterError(f"Unknown property '{node.name}' on type '{qualified}'")
        return Column(f)

    def visit_Attribute(self, node):
        raise FilterError("Navigation paths are not supported in $filter")

    def generic_visit(self, node):
        if isinstance(node, ast._Literal):
            return node
        raise FilterError(f"Unsupported expression: {type(node).__name__}")

    # boolean structure

    def condition(self, node) -> Condition:
        value = self.visit(node)
        if isinstance(value, Condition):
            return value
        if isinstance(value, Column) and value.field.edm == model.BOOLEAN:
            return Condition(f"{value.sql} = 1", [])
        raise FilterError("The expression is not a boolean condition")

    def visit_BoolOp(self, node: ast.BoolOp) -> Condition:
        left, right = self.condition(node.left), self.condition(node.right)
        if isinstance(node.op, ast.And):
            bounds = dict(left.lower_bounds)
            for name, value in right.lower_bounds.items():
                bounds[name] = max(bounds[name], value) if name in bounds else value
            return Condition(f"({left.sql} AND {right.sql})", left.params + right.params, bounds)
        shared = left.lower_bounds.keys() & right.lower_bounds.keys()
        bounds = {name: min(left.lower_bounds[name], right.lower_bounds[name]) for name in shared}
        return Condition(f"({left.sql} OR {right.sql})", left.params + right.params, bounds)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Condition:
        if isinstance(node.op, ast.Not):
            inner = self.condition(node.operand)
            return Condition(f"(NOT {inner.sql})", inner.params)
        raise FilterError("Arithmetic is not supported in $filter")

    def visit_BinOp(self, node):
        raise FilterError("Arithmetic is not supported in $filter")

    # comparisons

    def visit_Compare(self, node: ast.Compare) -> Condition:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.comparator, ast.In):
            return self._in(left, right)
        op = _COMPARATORS[type(node.comparator)]
        if isinstance(left, ast._Literal) and not isinstance(right, ast._Literal):
            left, right, op = right, left, _MIRRORED[op]
        if isinstance(left, ast._Literal):
            raise FilterError("A comparison needs a property on one side")
        if isinstance(right, ast.Null):
            return Condition(f"{left.sql} IS {'NOT ' if op == '!=' else ''}NULL", list(getattr(left, 'params', [])))
        if isinstance(left, StringExpr):
            return Condition(f"{left.sql} {op} ?", left.params + [self._string_literal(right, None)])
        if isinstance(left, NumberExpr):
            if not isinstance(right, ast.Integer):
                raise FilterError("length() can only be compared with an integer literal")
            return Condition(f"{left.sql} {op} ?", left.params + [int(right.val)])
        if isinstance(right, (Column, StringExpr)):
            return self._column_to_column(left, right, op)
        f = left.field
        value = self.coerce(f, right)
        if f.edm == model.DECIMAL:
            return self._decimal_compare(left.sql, value, op)
        bounds = {f.name: value} if op in (">", ">=", "=") and f.edm != model.DECIMAL else {}
        return Condition(f"{left.sql} {op} ?", [value], bounds)

    def _column_to_column(self, left, right, op) -> Condition:
        if isinstance(left, Column) and isinstance(right, Column):
            if left.field.edm != right.field.edm:
                raise FilterError(f"Cannot compare '{left.field.name}' with '{right.field.name}': different types")
            if left.field.edm == model.DECIMAL:
                return Condition(f"dec_cmp({left.sql}, {right.sql}) {op} 0", [])
        return Condition(f"{left.sql} {op} {right.sql}", list(getattr(right, "params", [])))

    def _decimal_compare(self, column_sql: str, value: Decimal, op: str) -> Condition:
        # Doubles decide where they clearly differ (rounding is monotonic); near-ties go to exact Decimal comparison.
        approx = float(value)
        margin = abs(approx) * 1e-12 + 1e-300
        sql = (
            f"(CASE WHEN CAST({column_sql} AS REAL) > ? THEN 1 WHEN CAST({column_sql} AS REAL) < ? THEN -1 "
            f"ELSE dec_cmp({column_sql}, ?) END) {op} 0"
        )
        return Condition(sql, [approx + margin, approx - margin, str(value)])

    def _in(self, left, right) -> Condition:
        if not isinstance(left, Column) or not isinstance(right, ast.List):
            raise FilterError("'in' needs a property on the left and a list of literals on the right")
        values = [self.coerce(left.field, item) for item in right.val]
        if left.field.edm == model.DECIMAL:
            parts = [self._decimal_compare(left.sql, v, "=") for v in values]
            return Condition("(" + " OR ".join(p.sql for p in parts) + ")", [x for p in parts for x in p.params])
        return Condition(f"{left.sql} IN ({', '.join('?' * len(values))})", values)

    # functions

    def visit_Call(self, node: ast.Call):
        name = node.func.name
        args = [self.visit(arg) for arg in node.args]
        if name in ("tolower", "toupper"):
            inner = self._string_operand(args[0], name)
            return StringExpr(f"{'lower' if name == 'tolower' else 'upper'}({inner.sql})", list(inner.params))
        if name in ("contains", "startswith", "endswith"):
            subject = self._string_operand(args[0], name)
            needle = self._string_literal(args[1], None)
            if needle == "":
                return Condition(f"{subject.sql} IS NOT NULL", list(subject.params))
            # instr/substr are case-sensitive, unlike SQLite's LIKE, which is what IFS (Oracle) does
            if name == "contains":
                return Condition(f"instr({subject.sql}, ?) > 0", subject.params + [needle])
            if name == "startswith":
                return Condition(f"substr({subject.sql}, 1, ?) = ?", subject.params + [len(needle), needle])
            return Condition(f"substr({subject.sql}, ?) = ?", subject.params + [-len(needle), needle])
        if name == "length":
            subject = self._string_operand(args[0], name)
            return NumberExpr(f"length({subject.sql})", list(subject.params))
        raise FilterError(f"Function '{name}' is not supported")

    def _string_operand(self, value, function: str) -> StringExpr:
        if isinstance(value, StringExpr):
            return value
        if isinstance(value, Column) and value.field.edm in (model.STRING, model.ENUM):
            return StringExpr(value.sql, [])
        raise FilterError(f"'{function}' needs a string property")

    # literal coercion

    def _string_literal(self, literal, f: model.Field | None) -> str:
        if not isinstance(literal, ast.String):
            raise FilterError(f"Expected a string literal{f' for {f.name}' if f else ''}")
        value = literal.val
        if value.startswith(ENUM_SENTINEL):
            _, type_name, member = value.split(ENUM_SENTINEL, 2)
            if f is None or f.enum is None or f.enum.name != type_name:
                target = f.name if f else "a string expression"
                raise FilterError(f"Enumeration literal of type '{type_name}' cannot be compared with {target}")
            return member
        return value

    def coerce(self, f: model.Field, literal) -> object:
        if not isinstance(literal, ast._Literal):
            raise FilterError(f"Expected a literal to compare with '{f.name}'")
        edm = f.edm
        if edm == model.STRING:
            return self._string_literal(literal, f)
        if edm == model.ENUM:
            value = self._string_literal(literal, f)
            if value not in f.enum.members:
                raise FilterError(f"'{value}' is not a member of enumeration type '{f.enum.name}'")
            return value
        if edm == model.DECIMAL:
            if isinstance(literal, (ast.Integer, ast.Float)):
                return Decimal(literal.val)
        elif edm in (model.INT32, model.INT64):
            if isinstance(literal, ast.Integer):
                return int(literal.val)
            if isinstance(literal, ast.Float):
                return float(literal.val)
        elif edm == model.BOOLEAN:
            if isinstance(literal, ast.Boolean):
                return 1 if literal.py_val else 0
        elif edm == model.DATE:
            if isinstance(literal, ast.Date):
                return literal.val
        elif edm == model.DATETIME:
            if isinstance(literal, ast.DateTime):
                return self.rules.epoch(literal.val)
        kind = type(literal).__name__
        raise FilterError(f"A {kind} literal cannot be compared with '{f.name}' of type {_type_name(f)}")


def _type_name(f: model.Field) -> str:
    return f.enum.name if f.enum else f.edm


def translate(text: str, entity: model.Entity, service: model.Service, rules: TimeRules) -> Condition:
    """The $filter text as a SQL condition, or FilterError with a message naming the problem."""
    prepared = resolve_enum_literals(text, service)
    try:
        # sly keeps parse state on the instances: one pair per call keeps concurrent requests apart
        tree = ODataParser().parse(ODataLexer().tokenize(prepared))
    except odata_errors.TokenizingException as exc:
        raise FilterError(f"Syntax error in $filter at position {exc.token.index}: '{text[exc.token.index:][:20]}'")
    except odata_errors.ParsingException as exc:
        if exc.eof or exc.token is None:
            raise FilterError("Syntax error in $filter: unexpected end of expression")
        raise FilterError(f"Syntax error in $filter near '{str(exc.token.value)[:30]}'")
    except odata_errors.ODataException as exc:
        raise FilterError(str(exc))
    if tree is None:
        raise FilterError("Empty $filter")
    return _Translator(entity, rules).condition(tree)
