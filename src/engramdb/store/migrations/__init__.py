"""Numbered, hashed SQL migrations: ``NNNN_<desc>.sql`` applied in order, each recorded.

Each migration runs in its own transaction together with its ``(version, name, sha256)`` row
in ``_migrations``. Opening a store whose recorded hashes differ from the shipped files, or
whose schema is newer than this engramdb, raises :class:`MigrationError`.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources

from engramdb.errors import MigrationError

__all__ = ["Migration", "apply_migrations", "available_migrations"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One shipped migration file."""

    version: int
    name: str
    sql: str
    sha256: str


def available_migrations() -> list[Migration]:
    """The migrations shipped with this engramdb, in version order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        sql = entry.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=sql,
                sha256=hashlib.sha256(sql.encode("utf-8")).hexdigest(),
            )
        )
    found.sort(key=lambda m: m.version)
    return found


def _applied(conn: sqlite3.Connection) -> dict[int, str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL,"
        " applied REAL NOT NULL)"
    )
    return {int(v): str(h) for v, h in conn.execute("SELECT version, sha256 FROM _migrations")}


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Validate applied migrations and apply the missing ones. Returns the schema version.

    The connection must be in autocommit mode (``isolation_level=None``).

    Raises:
        MigrationError: an applied migration's hash differs from the shipped file, or the
            store has migrations this engramdb does not know (it was written by a newer one).
    """
    shipped = available_migrations()
    applied = _applied(conn)
    known = {m.version: m for m in shipped}
    newer = sorted(set(applied) - set(known))
    if newer:
        raise MigrationError(
            f"this store has schema version {max(newer)}, newer than this engramdb supports "
            f"({max(known)}); upgrade engramdb to open it"
        )
    for version, digest in applied.items():
        if known[version].sha256 != digest:
            raise MigrationError(
                f"migration {version:04d}_{known[version].name} differs from the one applied "
                "to this store; the store was written by an incompatible engramdb build"
            )
    for migration in shipped:
        if migration.version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration.version in _applied(conn):  # another process applied it meanwhile
                conn.execute("COMMIT")
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO _migrations (version, name, sha256, applied) VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.sha256, time.time()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return shipped[-1].version if shipped else 0


def _statements(script: str) -> list[str]:
    """Split a migration script into complete statements (``executescript`` would commit)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if not buf and line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
