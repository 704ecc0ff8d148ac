"""Where SQLite and PostgreSQL differ, in one place: statement text, schema text, integrity errors.

The repository modules write one SQL text for both engines: SQLite's ``?`` (and ``:name``)
placeholders, ISO-8601 text times, 0/1 integers for flags, ``ON CONFLICT ... DO``. The PostgreSQL
connection (`storage.postgres`) rewrites each statement once (cached) with `to_postgres`, and
each piece of schema text with `to_postgres_ddl`, so no repository module branches on the engine.
What SQL cannot say the same way on both goes through a helper here, and only here.

Kept free of psycopg so an embedded (SQLite) server never imports it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any


class PostgresIntegrityError(sqlite3.IntegrityError):
    """A broken constraint on PostgreSQL (unique, foreign key, check, the append-only audit log),
    raised by `storage.postgres` in place of psycopg's own. A kind of SQLite's, so the code (and
    the tests) that turn a broken constraint into a `ConflictError` catch it unchanged, and
    nothing outside `storage.postgres` imports psycopg."""


def is_postgres(db: Any) -> bool:
    """True for the PostgreSQL connection (`storage.postgres.PostgresDatabase`), False for
    sqlite-utils' ``Database``."""
    return getattr(db, "engine", "sqlite") == "postgresql"


def is_postgres_url(target: object) -> bool:
    """A database setting names PostgreSQL when it is a ``postgresql://`` (or ``postgres://``) URL;
    anything else is a SQLite file path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _outside_literals(sql: str) -> list[tuple[bool, str]]:
    """``sql`` cut into (is_code, text) pieces: quoted strings, quoted names and ``--`` comments
    are not code, so a ``?`` or ``%`` inside them is left alone."""
    pieces: list[tuple[bool, str]] = []
    for match in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|[^'\"-]+|-", sql):
        text = match.group(0)
        pieces.append((text[0] not in "'\"" and not text.startswith("--"), text))
    return pieces


_NULL_TEST = re.compile(r"(\?|(?<!:):[A-Za-z_]\w*)(\s+IS\s+(?:NOT\s+)?NULL\b)", re.IGNORECASE)


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> tuple[str, tuple[str, ...]]:
    """SQLite statement text -> (psycopg text, the parameter names in order).

    Every ``?`` and every ``:name`` becomes a ``%s`` of its own, as each is a parameter of its
    own to SQLite (a mapping's values are put in that order, `positional`); a literal ``%`` is
    doubled. ``? IS NULL`` becomes ``%s::text IS NULL``: a NULL parameter has no type on
    PostgreSQL, which refuses to guess one. Cached: statement texts are constants.
    """
    out: list[str] = []
    names: list[str] = []
    for is_code, text in _outside_literals(sql):
        text = text.replace("%", "%%")
        if is_code:
            text = _NULL_TEST.sub(lambda m: m.group(1) + "::text" + m.group(2), text)

            def placeholder(match: re.Match[str]) -> str:
                if match.group(0) != "?":
                    names.append(match.group(0)[1:])
                return "%s"

            text = re.sub(r"\?|(?<!:):[A-Za-z_]\w*(?!\w)", placeholder, text)
        out.append(text)
    return "".join(out), tuple(names)


def positional(names: tuple[str, ...], params: Sequence[Any] | dict[str, Any]) -> Sequence[Any]:
    """The parameters in the order of `to_postgres`' placeholders."""
    if isinstance(params, dict):
        return [params[name] for name in names]
    return params


_TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+) BEFORE (UPDATE|DELETE|INSERT) ON (\w+)\s+BEGIN\s+"
    r"SELECT RAISE\(ABORT, '((?:[^']|'')*)'\);?\s*END;?",
    re.IGNORECASE,
)
_DROP_TRIGGER = re.compile(r"DROP TRIGGER (IF EXISTS )?(\w+)\s*(;|$)", re.IGNORECASE)

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION waitroom_refuse() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'integrity_constraint_violation';
END
$fn$
"""
"""What a SQLite ``RAISE(ABORT, message)`` trigger becomes: a row trigger calling this function
with the message, which fails the statement as a constraint would (`PostgresIntegrityError`)."""

NOCASE_COLLATION = """
CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2',
                                       deterministic = false)
"""
"""SQLite's ``COLLATE NOCASE`` unchanged in the SQL text: an ICU collation called ``nocase`` that
ignores case (unique usernames and emails regardless of case, lookups that ignore it). Unlike
SQLite's it folds every script's case, not only ASCII."""


def _drop_trigger(match: re.Match[str]) -> str:
    # SQLite trigger names are unique in a schema; PostgreSQL wants the table: look it up.
    name = match.group(2)
    missing = "" if match.group(1) else f"RAISE EXCEPTION 'no trigger {name}';"
    return (
        "DO $dt$ DECLARE t regclass; BEGIN "
        f"SELECT tgrelid::regclass INTO t FROM pg_trigger WHERE tgname = '{name}' LIMIT 1; "
        f"IF t IS NULL THEN {missing} RETURN; END IF; "
        f"EXECUTE format('DROP TRIGGER %I ON %s', '{name}', t); END $dt$" + match.group(3)
    )


@lru_cache(maxsize=256)
def to_postgres_ddl(script: str) -> str:
    """SQLite schema text -> the same schema on PostgreSQL.

    * ``INTEGER PRIMARY KEY`` (SQLite's rowid alias, numbered when left out) -> a 64-bit identity
      column that still takes an explicit id; ``INTEGER`` -> ``BIGINT`` (SQLite's are 64-bit);
      ``REAL`` -> ``DOUBLE PRECISION`` (PostgreSQL's ``REAL`` has 4 bytes).
    * ``CREATE TRIGGER ... BEGIN SELECT RAISE(ABORT, 'message'); END`` -> a row trigger calling
      `REFUSE_FUNCTION`; ``DROP TRIGGER name`` finds the trigger's table itself.
    * ``COLLATE NOCASE`` stays: `NOCASE_COLLATION` makes it mean the same.
    """
    out: list[str] = []
    for is_code, text in _outside_literals(script):
        if is_code:
            text = re.sub(
                r"\bINTEGER\s+PRIMARY\s+KEY\b",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                text,
                flags=re.IGNORECASE,
            )
            text = re.sub(r"\bINTEGER\b", "BIGINT", text, flags=re.IGNORECASE)
            text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text, flags=re.IGNORECASE)
        out.append(text)
    translated = "".join(out)
    translated = _TRIGGER.sub(
        lambda m: (
            f"CREATE TRIGGER {m.group(1)} BEFORE {m.group(2)} ON {m.group(3)} "
            f"FOR EACH ROW EXECUTE FUNCTION waitroom_refuse('{m.group(4)}');"
        ),
        translated,
    )
    return _DROP_TRIGGER.sub(_drop_trigger, translated)


_DDL = re.compile(r"\s*(CREATE|ALTER|DROP)\b", re.IGNORECASE)


def is_ddl(sql: str) -> bool:
    """Schema statements (translated with `to_postgres_ddl`) as against data statements."""
    return _DDL.match(sql) is not None
