"""API keys, stored hashed in the store file, each granting namespaces and read or write.

A key is ``egm_`` followed by 43 random URL-safe characters (256 bits). Only its SHA-256 is
stored: with that much entropy a fast hash is as safe as a slow one, and checking a key is
one indexed lookup, the same cost whether or not the key exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engramdb.engine import Memory, check_namespace
from engramdb.errors import InvalidInputError, NotFoundError, UnauthorizedError
from engramdb.service.scope import Scope

if TYPE_CHECKING:
    from engramdb.service._cluster import ClusterMemory

__all__ = ["KEY_PREFIX", "KeyInfo", "KeyRing", "NewKey"]

KEY_PREFIX = "egm_"
_NAME = re.compile(r"^[\w.@:-]{1,64}$")
_SHOWN = 8  # characters of the key kept in clear, to tell keys apart in listings


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """A key as listed: everything but the key itself.

    Attributes:
        name: the name given when it was made.
        prefix: its first characters (``egm_`` and a few more).
        namespaces: the namespaces it grants, in order; the first is where writes go by default.
        read_only: whether it may only read.
        created: when it was made (UTC epoch seconds).
        revoked: when it was revoked, or ``None``.
    """

    name: str
    prefix: str
    namespaces: tuple[str, ...]
    read_only: bool
    created: float
    revoked: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewKey:
    """A key just made: ``key`` is shown this once and never stored."""

    key: str
    info: KeyInfo


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: sqlite3.Row | tuple[object, ...]) -> KeyInfo:
    name, prefix, namespaces, read_only, created, revoked = row
    return KeyInfo(
        name=str(name),
        prefix=str(prefix),
        namespaces=tuple(json.loads(str(namespaces))),
        read_only=bool(read_only),
        created=float(created),  # type: ignore[arg-type]
        revoked=None if revoked is None else float(revoked),  # type: ignore[arg-type]
    )


_COLUMNS = "name, prefix, namespaces, read_only, created, revoked"


class KeyRing:
    """The keys of one store (a served cluster's: those of its service store)."""

    def __init__(self, memory: Memory | ClusterMemory):
        self._memory = memory

    def add(self, name: str, namespaces: Sequence[str], *, read_only: bool = False) -> NewKey:
        """Make a key; the returned :class:`NewKey` holds the only copy of it.

        Raises:
            InvalidInputError: a bad name, no namespace or a bad one, or a live key already
                has this name.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"invalid key name {name!r}: use 1-64 letters, digits, '_', '.', '-', ':' or '@'"
            )
        granted = list(dict.fromkeys(namespaces))
        if not granted:
            raise InvalidInputError("a key needs at least one namespace (--namespace NS)")
        for ns in granted:
            check_namespace(ns)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(
            name=name,
            prefix=key[: len(KEY_PREFIX) + _SHOWN],
            namespaces=tuple(granted),
            read_only=read_only,
            created=time.time(),
        )
        store = self._memory.store
        try:
            with store.atomic(bump=False) as conn:
                conn.execute(
                    "INSERT INTO api_keys (name, prefix, hash, namespaces, read_only, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        info.name,
                        info.prefix,
                        _digest(key),
                        json.dumps(list(info.namespaces)),
                        int(read_only),
                        info.created,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise InvalidInputError(
                f"a key named {name!r} exists already; revoke it first or choose another name"
            ) from exc
        return NewKey(key=key, info=info)

    def list(self, *, revoked: bool = False) -> list[KeyInfo]:
        """The keys, oldest first; revoked ones too with ``revoked``."""
        store = self._memory.store
        cond = "" if revoked else " WHERE revoked IS NULL"
        with store.reading():
            rows = store.conn.execute(f"SELECT {_COLUMNS} FROM api_keys{cond} ORDER BY id")
            return [_info(r) for r in rows]

    def revoke(self, name: str) -> KeyInfo:
        """Revoke the live key called ``name``; requests with it fail from now on.

        Raises:
            NotFoundError: no live key has this name.
        """
        store = self._memory.store
        with store.atomic(bump=False) as conn:
            row = conn.execute(
                f"UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL"
                f" RETURNING {_COLUMNS}",
                (time.time(), name),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no key named {name!r}")
        return _info(row)

    def any(self) -> bool:
        """Whether any key is live (the service then requires one on every request)."""
        store = self._memory.store
        with store.reading():
            row = store.conn.execute(
                "SELECT 1 FROM api_keys WHERE revoked IS NULL LIMIT 1"
            ).fetchone()
        return row is not None

    def scope(self, key: str | None) -> Scope:
        """The scope of a presented key.

        Raises:
            UnauthorizedError: no key, or one that is unknown or revoked.
        """
        if not key:
            raise UnauthorizedError("this request needs a key: Authorization: Bearer <key>")
        store = self._memory.store
        with store.reading():
            row = store.conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ? AND revoked IS NULL",
                (_digest(key),),
            ).fetchone()
        if row is None:
            raise UnauthorizedError("the key is not valid (unknown or revoked)")
        info = _info(row)
        return Scope(info.name, info.namespaces, not info.read_only)
