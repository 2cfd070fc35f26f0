"""A subset of JQL, parsed into a predicate and a sort key over the store's issues, refusing what it cannot read with
Jira's own messages.

Dates in queries are read in the API user's time zone with minute precision, the way Jira reads them: a client that
keeps its bookmark in UTC, or with seconds, is off (the classic pitfall the stand-in is meant to expose)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from operator import ge, gt, le, lt
from typing import Callable
from zoneinfo import ZoneInfo

from . import site as catalogue
from .site import Site
from .store import Issue

KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
OPERATORS = ("!=", ">=", "<=", "!~", "=", ">", "<", "~")
DATE_FORMATS_MESSAGE = ("Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
                        "or a period format e.g. '-5d', '4w 2d'.")
PERIOD = re.compile(r"^([-+]?)\s*((?:\d+\s*[wdhm]\s*)+)$", re.IGNORECASE)
PERIOD_PART = re.compile(r"(\d+)\s*([wdhm])", re.IGNORECASE)
PERIOD_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000}
ABSOLUTE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$")


class JqlError(Exception):
    """A query Jira would refuse: 400 with this message in errorMessages."""


@dataclass
class Token:
    kind: str  # "word", "string", "op", "(", ")", ",", "end"
    text: str
    position: int  # 1-based character

    @property
    def keyword(self) -> str | None:
        return self.text.lower() if self.kind == "word" and self.text.lower() in KEYWORDS else None

    def shown(self) -> str:
        return "end of query" if self.kind == "end" else self.text


def _syntax(message: str, token: Token) -> JqlError:
    return JqlError(f"Error in the JQL Query: {message} (line 1, character {token.position})")


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(jql):
        c = jql[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(Token(c, c, i + 1))
            i += 1
        elif c in "\"'":
            end = i + 1
            text = []
            while end < len(jql) and jql[end] != c:
                if jql[end] == "\\" and end + 1 < len(jql):
                    end += 1
                text.append(jql[end])
                end += 1
            if end >= len(jql):
                raise JqlError(f"Error in the JQL Query: The quoted string '{jql[i + 1:]}' has not been completed. "
                               f"(line 1, character {i + 1})")
            tokens.append(Token("string", "".join(text), i + 1))
            i = end + 1
        elif any(jql.startswith(op, i) for op in OPERATORS):
            op = next(op for op in OPERATORS if jql.startswith(op, i))
            tokens.append(Token("op", op, i + 1))
            i += len(op)
        else:
            start = i
            while i < len(jql) and not jql[i].isspace() and jql[i] not in "(),\"'=!<>~":
                if jql[i] == "[":  # cf[10050]
                    close = jql.find("]", i)
                    i = close + 1 if close > 0 else len(jql)
                    continue
                i += 1
            if i == start:
                raise JqlError(f"Error in the JQL Query: The character '{c}' is a reserved JQL character. You must "
                               f"enclose it in a string or use the escape '\\u{ord(c):04x}' instead. "
                               f"(line 1, character {i + 1})")
            tokens.append(Token("word", jql[start:i], start + 1))
    tokens.append(Token("end", "", len(jql) + 1))
    return tokens


# the parse tree

@dataclass
class Clause:
    field: str
    field_token: Token
    operator: str  # "=", "!=", ..., "in", "not in", "is", "is not"
    values: list  # [(kind, text)] kind: "value", "empty", "function"


@dataclass
class Node:
    kind: str  # "and", "or", "not"
    children: list


class Parser:
    def __init__(self, jql: str):
        self.tokens = tokenize(jql)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self):
        where = None
        if self.current.kind != "end" and self.current.keyword != "order":
            where = self.or_expression()
        order = []
        if self.current.keyword == "order":
            self.take()
            if self.current.keyword != "by":
                raise _syntax(f"Expecting 'by' but got '{self.current.shown()}'.", self.current)
            self.take()
            while True:
                token = self.take()
                if token.kind not in ("word", "string") or token.keyword:
                    raise _syntax(f"Expecting a field name but got '{token.shown()}'.", token)
                direction = None
                if self.current.keyword in ("asc", "desc"):
                    direction = self.take().keyword
                order.append((token, direction))
                if self.current.kind == ",":
                    self.take()
                    continue
                break
        if self.current.kind != "end":
            raise _syntax(f"Expecting either 'OR' or 'AND' but got '{self.current.shown()}'.", self.current)
        return where, order

    def or_expression(self):
        children = [self.and_expression()]
        while self.current.keyword == "or":
            self.take()
            children.append(self.and_expression())
        return children[0] if len(children) == 1 else Node("or", children)

    def and_expression(self):
        children = [self.not_expression()]
        while self.current.keyword == "and":
            self.take()
            children.append(self.not_expression())
        return children[0] if len(children) == 1 else Node("and", children)

    def not_expression(self):
        if self.current.keyword == "not" or (self.current.kind == "op" and self.current.text == "!"):
            self.take()
            return Node("not", [self.not_expression()])
        if self.current.kind == "(":
            self.take()
            inner = self.or_expression()
            if self.current.kind != ")":
                raise _syntax(f"Expecting ')' but got '{self.current.shown()}'.", self.current)
            self.take()
            return inner
        return self.clause()

    def clause(self) -> Clause:
        field = self.take()
        if field.kind not in ("word", "string") or (field.keyword and field.kind == "word"):
            raise _syntax(f"Expecting a field name but got '{field.shown()}'.", field)
        token = self.current
        if token.kind == "op":
            operator = self.take().text
        elif token.keyword == "in":
            self.take()
            operator = "in"
        elif token.keyword == "not" and self.tokens[self.index + 1].keyword == "in":
            self.index += 2
            operator = "not in"
        elif token.keyword == "is":
            self.take()
            operator = "is"
            if self.current.keyword == "not":
                self.take()
                operator = "is not"
        else:
            raise _syntax(f"Expecting operator but got '{token.shown()}'. The valid operators are '=', '!=', '<', "
                          f"'>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.", token)
        if operator in ("in", "not in"):
            if self.current.kind != "(":
                raise _syntax(f"Expecting '(' but got '{self.current.shown()}'.", self.current)
            self.take()
            values = [self.value()]
            while self.current.kind == ",":
                self.take()
                values.append(self.value())
            if self.current.kind != ")":
                raise _syntax(f"Expecting ')' but got '{self.current.shown()}'.", self.current)
            self.take()
        else:
            values = [self.value()]
        if operator in ("is", "is not") and values[0][0] != "empty":
            raise _syntax(f"Expecting 'EMPTY' or 'NULL' but got '{values[0][1]}'.", token)
        return Clause(field.text, field, operator, values)

    def value(self) -> tuple[str, str]:
        token = self.take()
        if token.kind == "string":
            return "value", token.text
        if token.kind == "word":
            if token.keyword in ("empty", "null"):
                return "empty", token.text
            if self.current.kind == "(":
                self.take()
                if self.current.kind != ")":
                    raise _syntax(f"Expecting ')' but got '{self.current.shown()}'.", self.current)
                self.take()
                return "function", token.text
            if token.keyword:
                raise _syntax(f"Expecting either a value, list or function but got '{token.text}'.", token)
            return "value", token.text
        raise _syntax(f"Expecting either a value, list or function but got '{token.shown()}'.", token)


# evaluation

Predicate = Callable[[Issue], bool]


@dataclass
class Query:
    predicate: Predicate | None  # None: unbounded
    sort_key: Callable[[Issue], tuple]


SYSTEM_ALIASES = {"type": "issuetype", "issuekey": "key", "createddate": "created", "updateddate": "updated",
                  "resolved": "resolutiondate", "due": "duedate", "statuscategory": "statuscategory"}
CHOICE_FIELDS = ("project", "issuetype", "status", "statuscategory", "priority", "resolution", "assignee", "reporter")
DATE_FIELDS = ("created", "updated", "resolutiondate", "duedate")


ORDERINGS = {">": gt, ">=": ge, "<": lt, "<=": le}


def _text_of(issue: Issue) -> str:
    return " ".join([issue.summary, _adf_text(issue.description), _adf_text(issue.environment),
                     *(_adf_text(c.body) for c in issue.comments)])


SYSTEM_READERS: dict[str, Callable[[Issue], object]] = {
    "project": lambda issue: issue.project.id, "issuetype": lambda issue: issue.issue_type.id,
    "status": lambda issue: issue.status.id, "statuscategory": lambda issue: str(issue.status.category_id),
    "priority": lambda issue: issue.priority[0],
    "resolution": lambda issue: "10000" if issue.resolution_ms else None,
    "assignee": lambda issue: issue.assignee, "reporter": lambda issue: issue.reporter,
    "labels": lambda issue: issue.labels, "key": lambda issue: (issue.project.key, issue.number),
    "id": lambda issue: issue.id, "summary": lambda issue: issue.summary, "text": _text_of,
    "created": lambda issue: issue.created_ms, "updated": lambda issue: issue.updated_ms,
    "resolutiondate": lambda issue: issue.resolution_ms,
}


class _Missing:
    """Sorts after every value (Jira lists empty values last in ascending order)."""

    def __lt__(self, other):
        return False

    def __gt__(self, other):
        return not isinstance(other, _Missing)

    def __eq__(self, other):
        return isinstance(other, _Missing)


MISSING = _Missing()


class Compiler:
    def __init__(self, site: Site, zone: ZoneInfo, key_exists: Callable[[str], bool]):
        self.site = site
        self.zone = zone
        self.key_exists = key_exists

    def compile(self, jql: str) -> Query:
        """Everything that depends only on the query (field readers, literals, value sets) is worked out here, once,
        so the predicate and sort key only read each field an issue once."""
        where, order = Parser(jql or "").parse()
        predicate = self._node(where) if where is not None else None
        keys = []
        for token, direction in order:
            field, _kind = self._field(token)
            keys.append((self._sort_reader(field), direction or ("desc" if field in DATE_FIELDS else "asc")))

        def sort_key(issue: Issue):
            parts = []
            for read, direction in keys:
                value = read(issue)
                parts.append(_Reversed(value) if direction == "desc" else value)
            parts.append(issue.id)
            return tuple(parts)

        return Query(predicate, sort_key)

    # fields

    def _field(self, token: Token) -> tuple[str, str]:
        """(field id, kind) for a field named in the query."""
        name = token.text.strip()
        lowered = SYSTEM_ALIASES.get(name.lower(), name.lower())
        if lowered in CHOICE_FIELDS or lowered in DATE_FIELDS:
            return lowered, lowered
        if lowered in ("labels", "key", "id", "summary", "text"):
            return lowered, lowered
        match = re.fullmatch(r"cf\[(\d+)\]", lowered)
        for custom in self.site.custom_fields:
            if (match and int(match.group(1)) == custom.number) or custom.name.lower() == lowered:
                return custom.id, "custom-" + custom.kind
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def _display(self, token: Token) -> str:
        field, kind = self._field(token)
        if field.startswith("customfield_"):
            return self.site.custom_by_id[field].name
        return token.text

    # clauses

    def _node(self, node) -> Predicate:
        if isinstance(node, Clause):
            return self._clause(node)
        children = tuple(self._node(child) for child in node.children)
        if node.kind == "and":
            def every(issue: Issue) -> bool:
                for child in children:
                    if not child(issue):
                        return False
                return True
            return every
        if node.kind == "or":
            def either(issue: Issue) -> bool:
                for child in children:
                    if child(issue):
                        return True
                return False
            return either
        negated = children[0]
        return lambda issue: not negated(issue)

    def _clause(self, clause: Clause) -> Predicate:
        field, kind = self._field(clause.field_token)
        operator = clause.operator
        display = self._display(clause.field_token)
        allowed = self._operators(kind)
        if operator not in allowed:
            shown = operator.upper() if operator[0].isalpha() else operator
            raise JqlError(f"The operator '{shown}' is not supported by the '{display}' field.")
        read = self._reader(field)
        if operator in ("is", "is not"):
            wanted_empty = operator == "is"
            return lambda issue: _empty(read(issue)) == wanted_empty
        if any(v[0] == "empty" for v in clause.values):
            if operator in ("=", "in"):
                matches = _matcher([self._literal(field, kind, display, v) for v in clause.values if v[0] != "empty"])

                def empty_or_listed(issue: Issue) -> bool:
                    value = read(issue)
                    return _empty(value) or matches(value)
                return empty_or_listed
            return lambda issue: not _empty(read(issue))
        targets = [self._literal(field, kind, display, v) for v in clause.values]
        if operator in ("=", "in"):
            matches = _matcher(targets)
            return lambda issue: matches(read(issue))
        if operator in ("!=", "not in"):  # Jira: a field without a value never matches != / NOT IN
            matches = _matcher(targets)

            def set_and_not_listed(issue: Issue) -> bool:
                value = read(issue)
                return not _empty(value) and not matches(value)
            return set_and_not_listed
        if operator in ("~", "!~"):
            needle = str(targets[0]).lower().replace("*", "")
            if operator == "~":
                return lambda issue: needle in _text(read(issue)).lower()

            def set_and_not_containing(issue: Issue) -> bool:
                value = read(issue)
                return not _empty(value) and needle not in _text(value).lower()
            return set_and_not_containing
        target = targets[0]
        compare = ORDERINGS[operator]
        if kind == "priority":  # higher priority has the smaller id: `priority > Medium` is High and Highest
            negated_target = -int(target)
            return lambda issue: compare(-int(issue.priority[0]), negated_target)
        if kind == "key":
            project_key, number = target
            return lambda issue: issue.project.key == project_key and compare(issue.number, number)

        def set_and_ordered(issue: Issue) -> bool:
            value = read(issue)
            return not _empty(value) and compare(value, target)
        return set_and_ordered

    @staticmethod
    def _operators(kind: str) -> tuple[str, ...]:
        equality = ("=", "!=", "in", "not in")
        empty = ("is", "is not")
        ordering = (">", ">=", "<", "<=")
        return {
            "project": equality + empty, "issuetype": equality + empty, "status": equality + empty,
            "statuscategory": equality + empty,
            "priority": equality + ordering + empty, "resolution": equality + empty, "assignee": equality + empty,
            "reporter": equality + empty, "labels": equality + empty, "key": equality + ordering,
            "id": equality + ordering, "summary": ("~", "!~") + empty, "text": ("~",),
            "created": equality + ordering + empty, "updated": equality + ordering + empty,
            "resolutiondate": equality + ordering + empty, "duedate": equality + ordering + empty,
            "custom-string": ("~", "!~") + empty, "custom-url": equality + empty,
            "custom-number": equality + ordering + empty,
        }[kind]

    def _reader(self, field: str) -> Callable[[Issue], object]:
        """A function giving an issue's value of `field` in the form literals are compared with."""
        if field.startswith("customfield_"):
            return lambda issue: issue.custom.get(field)
        if field == "duedate":
            return lambda issue: self._date_ms(issue.duedate) if issue.duedate else None
        return SYSTEM_READERS[field]

    def _sort_reader(self, field: str) -> Callable[[Issue], object]:
        if field == "priority":
            return lambda issue: int(issue.priority[0])
        if field == "status":
            return lambda issue: issue.status.name
        if field == "issuetype":
            return lambda issue: issue.issue_type.name
        if field == "project":
            return lambda issue: issue.project.name
        if field in ("assignee", "reporter"):
            def display_name(issue: Issue):
                account = getattr(issue, field)
                return self.site.user(account).display_name if account else MISSING
            return display_name
        read = self._reader(field)

        def sortable(issue: Issue):
            value = read(issue)
            if _empty(value):
                return MISSING
            if isinstance(value, list):
                return ",".join(sorted(value))
            return value
        return sortable

    # literals

    def _literal(self, field: str, kind: str, display: str, value: tuple[str, str]):
        kind_of_value, text = value
        if kind_of_value == "function":
            if text.lower() == "currentuser" and kind in ("assignee", "reporter"):
                return self.site.api_user.account_id
            raise JqlError(f"Unable to find JQL function '{text}()'.")

        def missing():
            return JqlError(f"The value '{text}' does not exist for the field '{display}'.")

        if kind == "project":
            project = self.site.project(text) or next(
                (p for p in catalogue.PROJECTS if p.name.lower() == text.lower()), None)
            if project is None:
                raise missing()
            return project.id
        if kind == "issuetype":
            found = next((t for t in catalogue.ISSUE_TYPES if text.lower() in (t.id, t.name.lower())), None)
            if found is None:
                raise missing()
            return found.id
        if kind == "status":
            found = next((s for s in catalogue.STATUSES if text.lower() in (s.id, s.name.lower())), None)
            if found is None:
                raise missing()
            return found.id
        if kind == "statuscategory":
            found = next((s for s in catalogue.STATUSES
                          if text.lower() in (str(s.category_id), s.category_key, s.category_name.lower())), None)
            if found is None:
                raise missing()
            return str(found.category_id)
        if kind == "priority":
            found = next((p for p in catalogue.PRIORITIES if text.lower() in (p[0], p[1].lower())), None)
            if found is None:
                raise missing()
            return found[0]
        if kind == "resolution":
            if text.lower() not in ("done", "10000", "unresolved"):
                raise missing()
            return None if text.lower() == "unresolved" else "10000"
        if kind in ("assignee", "reporter"):
            user = self.site.user(text) or self.site.user_by_email(text)
            if user is None:
                raise JqlError(f"The value '{text}' does not exist for the field '{display}'.")
            return user.account_id
        if kind == "key":
            match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)-(\d+)", text)
            if text.isdigit():
                return self._key_by_id(text)
            if match is None or self.site.project(match.group(1)) is None:
                raise JqlError(f"The issue key '{text}' for field '{display}' is invalid.")
            if not self.key_exists(text.upper()):
                raise JqlError(f"An issue with key '{text.upper()}' does not exist for field '{display}'.")
            return match.group(1).upper(), int(match.group(2))
        if kind == "id":
            if not text.isdigit():
                raise JqlError(f"The issue key '{text}' for field '{display}' is invalid.")
            return int(text)
        if kind in DATE_FIELDS:
            return self._date(text, display)
        if kind == "custom-number":
            try:
                return float(text)
            except ValueError:
                raise JqlError(f"The value '{text}' for field '{display}' is invalid.") from None
        return text

    def _key_by_id(self, text: str):
        raise JqlError(f"The issue key '{text}' for field 'key' is invalid.")

    def _date(self, text: str, display: str) -> int:
        """Epoch milliseconds of a JQL date literal, in the user's zone, to the minute."""
        text = text.strip()
        period = PERIOD.match(text)
        if period:
            span = sum(int(n) * PERIOD_MS[unit.lower()] for n, unit in PERIOD_PART.findall(period.group(2)))
            now_minute = int(time.time() // 60 * 60_000)
            return now_minute - span if period.group(1) == "-" else now_minute + span
        match = ABSOLUTE.match(text)
        if match:
            year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
            try:
                moment = datetime(year, month, day, hour, minute, tzinfo=self.zone)
            except ValueError:
                moment = None
            if moment is not None and hour < 24:
                return int(moment.timestamp() * 1000)
        raise JqlError(f"Date value '{text}' for field '{display}' is invalid. {DATE_FORMATS_MESSAGE}")

    def _date_ms(self, day: str) -> int:
        return int(datetime.fromisoformat(day).replace(tzinfo=self.zone).timestamp() * 1000)


class _Reversed:
    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return other.value < self.value

    def __eq__(self, other):
        return self.value == other.value


def _empty(value) -> bool:
    return value is None or value == [] or value == ""


def _matcher(targets: list) -> Callable[[object], bool]:
    """Whether an issue's value equals one of the listed values, as sets: a list value (labels) holds one of them
    exactly, a text equals one ignoring case, anything else is equal."""
    exact = frozenset(targets)
    folded = frozenset(t.lower() for t in targets if isinstance(t, str))

    def matches(current) -> bool:
        if isinstance(current, list):
            return not exact.isdisjoint(current)
        if isinstance(current, str):
            return current.lower() in folded
        return current in exact
    return matches


def _text(value) -> str:
    return "" if value is None else str(value)


def _adf_text(node) -> str:
    if not isinstance(node, dict):
        return ""
    return " ".join([node.get("text", "")] + [_adf_text(child) for child in node.get("content", [])]).strip()
