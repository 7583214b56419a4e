"""What one caller may see and do: a key's namespaces and whether it may write.

Every verb of :class:`~engramdb.service.MemoryService` takes a :class:`Scope` and checks it
before the store is touched. A namespace outside the scope is indistinguishable from one
that does not exist: ids in it are "not found", and reads over it find nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from engramdb.engine import DEFAULT_NAMESPACE
from engramdb.errors import ForbiddenError, NotFoundError

__all__ = ["Scope", "host_name", "is_loopback"]


@dataclass(frozen=True, slots=True)
class Scope:
    """A caller's rights.

    Attributes:
        key: the name of the key in use (``None``: a local caller, no keys involved).
        namespaces: the namespaces it holds, in the order granted; ``None`` holds every one.
        write: whether it may add and forget.
    """

    key: str | None = None
    namespaces: tuple[str, ...] | None = None
    write: bool = True

    @classmethod
    def local(cls, namespace: str | None = None, *, write: bool = True) -> Scope:
        """A caller without a key: every namespace, or only ``namespace``."""
        return cls(None, None if namespace is None else (namespace,), write)

    def holds(self, namespace: str) -> bool:
        """Whether ``namespace`` is inside the scope."""
        return self.namespaces is None or namespace in self.namespaces

    @property
    def default_namespace(self) -> str:
        """Where a write without a namespace goes: the first namespace granted."""
        return self.namespaces[0] if self.namespaces else DEFAULT_NAMESPACE

    def writable(self, namespace: str | None) -> str:
        """The namespace a write goes to (``None``: the default one).

        Raises:
            NotFoundError: the namespace is outside the scope (said as if it did not exist).
            ForbiddenError: the key is read-only.
        """
        target = self.default_namespace if namespace is None else namespace
        if not self.holds(target):
            raise NotFoundError(f"namespace {target!r} not found")
        if not self.write:
            raise ForbiddenError(f"the key {self.key!r} is read-only")
        return target

    def readable(self, namespace: str | None) -> tuple[str, ...] | None:
        """The namespaces a read covers: ``None`` for every one, else a tuple, empty when
        the namespace asked for is outside the scope (the read then finds nothing)."""
        if namespace is not None:
            return (namespace,) if self.holds(namespace) else ()
        return self.namespaces


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of an HTTP ``Host`` header, without its port (``[::1]:80`` → ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header
