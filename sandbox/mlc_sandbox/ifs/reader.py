"""Reading pages of an entity set: WHERE from $filter, stable ORDER BY, seek (keyset) or offset paging, $expand."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from . import filters, model
from .query import BadRequest, QueryOptions, decode_skiptoken
from .store import columns, quote

ELEMENT_LIMIT = 5000


class ElementLimitExceeded(Exception):
    pass


@dataclass
class Page:
    rows: list[tuple]
    count: int | None
    next_position: dict | None  # where the following page starts (nextLink services only)
    expanded: dict[str, list]  # navigation name → per-row children (list of rows, or row/None for single)


def _select_all(entity: model.Entity) -> str:
    return ", ".join(quote(c) for c in columns(entity))


def _sort_key(entity: model.Entity, orderby: tuple[tuple[str, bool], ...]) -> list[tuple[str, bool]]:
    """The requested order made total by appending the keys."""
    order = list(orderby)
    named = {name for name, _ in order}
    order += [(k, False) for k in entity.keys if k not in named]
    return order


def _order_sql(entity: model.Entity, order: list[tuple[str, bool]]) -> str:
    parts = []
    for name, descending in order:
        direction = " DESC" if descending else ""
        if entity.field_by_name[name].edm == model.DECIMAL:
            # numeric order; exact (Decimal collation) only among rows whose doubles tie
            parts.append(f"CAST({quote(name)} AS REAL){direction}")
        parts.append(f"{quote(name)}{direction}")
    return ", ".join(parts)


def _seek_condition(order: list[tuple[str, bool]], last: list) -> tuple[str, list]:
    """Rows strictly after `last` in `order` (SQLite sorts NULL first ascending, last descending)."""
    disjuncts, params = [], []
    equal_prefix, equal_params = [], []
    for (name, descending), value in zip(order, last):
        col = quote(name)
        if value is None:
            after = None if descending else f"{col} IS NOT NULL"
            after_params = []
            equal, eq_params = f"{col} IS NULL", []
        else:
            after = f"({col} < ? OR {col} IS NULL)" if descending else f"{col} > ?"
            after_params = [value]
            equal, eq_params = f"{col} = ?", [value]
        if after is not None:
            disjuncts.append(" AND ".join([*equal_prefix, after]))
            params += equal_params + after_params
        equal_prefix.append(equal)
        equal_params = equal_params + eq_params
    if not disjuncts:
        return "0", []
    return "(" + " OR ".join(f"({d})" for d in disjuncts) + ")", params


def _company_clause(entity: model.Entity, companies: frozenset[str] | None) -> tuple[list[str], list]:
    """The rows a service user limited to `companies` may see (a tenant profile's allowed_companies): sets with a
    Company field show only those companies' rows; None sees everything."""
    if companies is None or "Company" not in entity.field_by_name:
        return [], []
    ordered = sorted(companies)
    return [f"{quote('Company')} IN ({', '.join('?' * len(ordered))})"], ordered


class Reader:
    def __init__(self, conn: sqlite3.Connection, entity: model.Entity, service: model.Service,
                 rules: filters.TimeRules, companies: frozenset[str] | None = None):
        self.conn = conn
        self.entity = entity
        self.service = service
        self.rules = rules
        self.companies = companies

    def _where(self, options: QueryOptions, order: list[tuple[str, bool]],
               fixed: dict | None = None) -> tuple[list[str], list]:
        clauses, params = _company_clause(self.entity, self.companies)
        for name, value in (fixed or {}).items():
            clauses.append(f"{quote(name)} = ?")
            params.append(value)
        if options.filter is not None:
            try:
                condition = filters.translate(options.filter, self.entity, self.service, self.rules)
            except filters.FilterError as exc:
                raise BadRequest(str(exc)) from exc
            clauses.append(condition.sql)
            params += condition.params
            leading, descending = order[0]
            if not descending and leading in condition.lower_bounds:
                # implied by the filter; spelled out so SQLite can seek the index instead of scanning it
                clauses.append(f"{quote(leading)} >= ?")
                params.append(condition.lower_bounds[leading])
        return clauses, params

    def count(self, options: QueryOptions, fixed: dict | None = None) -> int:
        clauses, params = self._where(options, _sort_key(self.entity, ()), fixed)
        sql = f"SELECT count(*) FROM {quote(self.entity.table)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return self.conn.execute(sql, params).fetchone()[0]

    def page(self, options: QueryOptions, page_size: int, next_links: bool, fixed: dict | None = None) -> Page:
        entity = self.entity
        order = _sort_key(entity, options.orderby)
        clauses, params = self._where(options, order, fixed)
        seekable = all(entity.field_by_name[name].edm != model.DECIMAL for name, _ in order)
        offset = options.skip
        remaining = options.top
        if options.skiptoken is not None:
            if not next_links:
                raise BadRequest("$skiptoken is not supported by this entity set: page with $top and $skip")
            position = decode_skiptoken(options.skiptoken)
            remaining = position.get("top", remaining)
            if "after" in position:
                after = position["after"]
                if len(after) != len(order):
                    raise BadRequest("The $skiptoken does not belong to this query")
                seek_sql, seek_params = _seek_condition(order, after)
                clauses.append(seek_sql)
                params += seek_params
                leading, descending = order[0]
                if after[0] is not None:
                    clauses.append(f"{quote(leading)} {'<=' if descending else '>='} ?")
                    params.append(after[0])
                offset = 0
            else:
                offset = int(position.get("offset", 0))
        limit = page_size if remaining is None else min(page_size, remaining)
        sql = f"SELECT {_select_all(entity)} FROM {quote(entity.table)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {_order_sql(entity, order)} LIMIT ? OFFSET ?"
        rows = self.conn.execute(sql, params + [limit + 1, offset]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_position = None
        if next_links and more and rows:
            left = None if remaining is None else remaining - len(rows)
            if left is None or left > 0:
                next_position = {} if left is None else {"top": left}
                if seekable:
                    positions = {name: i for i, name in enumerate(columns(entity))}
                    next_position["after"] = [rows[-1][positions[name]] for name, _ in order]
                else:
                    next_position["offset"] = offset + len(rows)
        count = self.count(options, fixed) if options.count else None
        expanded = {}
        elements = len(rows)
        for expand in options.expand:
            children = self.children(rows, expand.navigation)
            elements += sum(len(c) if isinstance(c, list) else (c is not None) for c in children)
            if elements > ELEMENT_LIMIT:
                raise ElementLimitExceeded()
            expanded[expand.navigation.name] = children
        return Page(rows, count, next_position, expanded)

    def children(self, rows: list[tuple], navigation: model.Navigation) -> list:
        """For each parent row, its related rows (a list for collections, a row or None for single)."""
        target = self.service.target(navigation)
        positions = {name: i for i, name in enumerate(columns(self.entity))}
        target_positions = {name: i for i, name in enumerate(columns(target))}
        local = [positions[a] for a, _ in navigation.key_pairs]
        remote_names = [b for _, b in navigation.key_pairs]
        parent_keys = [tuple(row[i] for i in local) for row in rows]
        grouped: dict[tuple, list] = {k: [] for k in parent_keys}
        distinct = list(grouped)
        for start in range(0, len(distinct), 500):
            batch = distinct[start : start + 500]
            if len(remote_names) == 1:
                where = f"{quote(remote_names[0])} IN ({', '.join('?' * len(batch))})"
                params = [k[0] for k in batch]
            else:
                tuple_sql = "(" + ", ".join("?" * len(remote_names)) + ")"
                where = (f"({', '.join(quote(n) for n in remote_names)}) IN "
                         f"(VALUES {', '.join([tuple_sql] * len(batch))})")
                params = [v for k in batch for v in k]
            visible, visible_params = _company_clause(target, self.companies)
            where = " AND ".join([where, *visible])
            params += visible_params
            order = _order_sql(target, _sort_key(target, ()))
            sql = f"SELECT {_select_all(target)} FROM {quote(target.table)} WHERE {where} ORDER BY {order}"
            remote = [target_positions[n] for n in remote_names]
            for child in self.conn.execute(sql, params):
                grouped[tuple(child[i] for i in remote)].append(child)
        if navigation.collection:
            return [grouped[k] for k in parent_keys]
        return [grouped[k][0] if grouped[k] else None for k in parent_keys]

    def by_key(self, key: dict) -> tuple | None:
        visible, visible_params = _company_clause(self.entity, self.companies)
        where = " AND ".join([*(f"{quote(k)} = ?" for k in self.entity.keys), *visible])
        sql = f"SELECT {_select_all(self.entity)} FROM {quote(self.entity.table)} WHERE {where}"
        return self.conn.execute(sql, [key[k] for k in self.entity.keys] + visible_params).fetchone()
