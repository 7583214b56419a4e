"""The Memory facade."""

from __future__ import annotations

from engramdb.engine._write import check_namespace
from engramdb.engine.memory import DEFAULT_NAMESPACE, Memory

__all__ = ["DEFAULT_NAMESPACE", "Memory", "check_namespace"]
