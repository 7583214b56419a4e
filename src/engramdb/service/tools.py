"""Tool and demonstration verbs of :class:`~engramdb.service.MemoryService`, scoped.

Tools and demonstrations live per namespace, like memories: a write goes to a namespace the
caller may write (its first one when none is named), a read covers one namespace (the
caller's first when none is named) and finds nothing in a namespace outside the scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engramdb.engine import Memory
from engramdb.errors import InvalidInputError
from engramdb.service.core import MemoryService
from engramdb.service.scope import Scope
from engramdb.tools.hits import AddToolsResult, Demo, DemoHits, Tool, ToolHits

__all__ = ["add_demo", "add_tools", "list_tools", "recall_demos", "recall_tools"]


def _memory(service: MemoryService) -> Memory:
    memory = service.memory
    if not isinstance(memory, Memory):
        raise InvalidInputError(
            "tools and demonstrations are kept by a single store, not a cluster"
        )
    return memory


def _read(scope: Scope, namespace: str | None) -> str | None:
    """The namespace a read covers, or ``None`` when it is outside the scope."""
    target = scope.default_namespace if namespace is None else namespace
    return target if scope.holds(target) else None


def add_tools(
    service: MemoryService, scope: Scope, specs: Any, *, namespace: str | None, server: str | None
) -> AddToolsResult:
    """:meth:`Memory.add_tools` in a namespace the caller may write."""
    target = scope.writable(namespace)
    return _memory(service).add_tools(specs, namespace=target, server=server)


def add_demo(  # noqa: PLR0913 - one demonstration's fields
    service: MemoryService,
    scope: Scope,
    request: str,
    *,
    calls: Any,
    answer: str | None,
    namespace: str | None,
    meta: Mapping[str, Any] | None,
) -> Demo:
    """:meth:`Memory.add_demo` in a namespace the caller may write."""
    target = scope.writable(namespace)
    return _memory(service).add_demo(request, calls, answer, namespace=target, meta=meta)


def list_tools(service: MemoryService, scope: Scope, *, namespace: str | None) -> list[Tool]:
    """The current tools of one namespace of the scope."""
    target = _read(scope, namespace)
    return [] if target is None else _memory(service).tools(namespace=target)


def recall_tools(  # noqa: PLR0913 - keyword-only options of one read
    service: MemoryService,
    scope: Scope,
    request: str,
    *,
    k: int,
    namespace: str | None,
    min_relevance: float | None,
    among: Sequence[int | str] | None,
) -> ToolHits:
    """:meth:`Memory.recall_tools` in one namespace of the scope."""
    memory = _memory(service)
    target = _read(scope, namespace)
    return memory.recall_tools(
        request,
        k,
        namespace="\0outside" if target is None else target,
        min_relevance=min_relevance,
        among=among,
    )


def recall_demos(  # noqa: PLR0913 - keyword-only options of one read
    service: MemoryService,
    scope: Scope,
    request: str,
    *,
    k: int,
    namespace: str | None,
    min_relevance: float | None,
    lambda_: float,
) -> DemoHits:
    """:meth:`Memory.recall_demos` in one namespace of the scope."""
    memory = _memory(service)
    target = _read(scope, namespace)
    return memory.recall_demos(
        request,
        k,
        namespace="\0outside" if target is None else target,
        min_relevance=min_relevance,
        lambda_=lambda_,
    )
