"""engramdb over the Model Context Protocol: the memory's verbs as tools an LLM can call.

Tools: ``remember``, ``recall``, ``recognize``, ``forget``, ``context`` and ``stats``, each
a thin call of :class:`~engramdb.service.MemoryService` within the caller's
:class:`~engramdb.service.Scope`.

* :func:`create_server` — the MCP server over a service and a way to find the caller's scope;
* :func:`create_mcp_http` — Streamable HTTP behind the service's bearer keys (``engram serve``
  routes ``/mcp`` to it);
* :func:`run_stdio` — stdio, one fixed scope (``engram mcp``).

Needs the ``server`` extra (the ``mcp`` SDK): ``pip install "engramdb[server]"``.
"""

from __future__ import annotations

from engramdb.mcp.http import McpHttp, create_mcp_http
from engramdb.mcp.server import create_server
from engramdb.mcp.stdio import run_stdio
from engramdb.mcp.tools import TOOLS

__all__ = ["TOOLS", "McpHttp", "create_mcp_http", "create_server", "run_stdio"]
