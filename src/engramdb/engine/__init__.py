"""The Memory facade."""

from __future__ import annotations

from engramdb.engine.memory import DEFAULT_NAMESPACE, Memory

__all__ = ["DEFAULT_NAMESPACE", "Memory"]
