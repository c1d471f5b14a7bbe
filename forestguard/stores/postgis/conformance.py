"""Is ``deforestation_zones`` the table of the seed DDL? Compare it with the DDL itself.

The reference is not a hand-written copy of the columns: the seed DDL is executed into the
session's temporary schema, in a transaction that is rolled back, and the server's own
catalog descriptions of both tables are compared (column types as ``format_type`` prints
them, NOT NULL, defaults, CHECK constraints, index methods and keys). Names of indexes may
differ; what they index may not. Extra columns or indexes are allowed: they do not change
what ForestGuard reads or writes.
"""

from __future__ import annotations

import re

import psycopg

from ...schema import POSTGIS_DDL, TABLE

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
_CHECKS = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('c', 'p')"
_INDEXES = "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass"
_INDEX_SHAPE = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ (USING .*)$")
_SEQUENCE_DEFAULT = re.compile(r"^nextval\('.*_seq'::regclass\)$")
_CASTS_AND_PARENTHESES = re.compile(r"::[a-z][a-z ]*(?:\[\])?|[()]")


def zone_table_problems(con: psycopg.Connection) -> list[str]:
    """What differs between the database's zone table and the seed DDL (empty: it conforms).

    Needs the TEMP privilege (granted to everyone by default); changes nothing.
    """
    if not con.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE]).fetchone()[0]:
        return [f"there is no {TABLE} table"]
    actual = _describe(con, TABLE)
    try:
        with con.transaction(force_rollback=True):
            con.execute("SELECT set_config('search_path', 'pg_temp,' || current_setting('search_path'), true)")
            con.execute(POSTGIS_DDL)
            expected = _describe(con, f"pg_temp.{TABLE}")
    except psycopg.errors.ReadOnlySqlTransaction:
        return ["not checked: the server is read-only (a replica?); check on the primary"]
    problems = []
    for name, (kind, not_null, default) in expected["columns"].items():
        if name not in actual["columns"]:
            problems.append(f"column {name} is missing")
            continue
        has_kind, has_not_null, has_default = actual["columns"][name]
        if has_kind != kind:
            problems.append(f"column {name} is {has_kind}, the DDL says {kind}")
        if has_not_null != not_null:
            problems.append(f"column {name} is {'NOT NULL' if has_not_null else 'nullable'}, the DDL says the opposite")
        if _default(has_default) != _default(default):
            problems.append(f"column {name} defaults to {has_default or 'nothing'}, the DDL says {default or 'nothing'}")
    problems += [f"constraint missing: {c}" for c in sorted(expected["checks"] - actual["checks"])]
    problems += [f"index missing: {i}" for i in sorted(expected["indexes"] - actual["indexes"])]
    return problems


def _describe(con: psycopg.Connection, table: str) -> dict:
    columns = {name: (kind, not_null, default) for name, kind, not_null, default in con.execute(_COLUMNS, [table])}
    checks = {_expression(row[0]) for row in con.execute(_CHECKS, [table])}
    indexes = set()
    for (definition,) in con.execute(_INDEXES, [table]):
        match = _INDEX_SHAPE.match(definition)
        indexes.add(f"{match[1] or ''}{match[2]}" if match else definition)
    return {"columns": columns, "checks": checks, "indexes": indexes}


def _expression(text: str) -> str:
    """A constraint without casts and parentheses: a dump and restore re-deparses
    ``(ARRAY['a'::varchar])::text[]`` as ``ARRAY[('a'::varchar)::text]``, same meaning."""
    return " ".join(_CASTS_AND_PARENTHESES.sub("", text).split())


def _default(expression: str | None) -> str | None:
    """Defaults compared by meaning: a serial's sequence is named after its schema and table."""
    if expression and _SEQUENCE_DEFAULT.match(expression):
        return "nextval(sequence)"
    return expression
