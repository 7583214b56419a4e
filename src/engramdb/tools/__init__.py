"""Tools and demonstrations as memories: spec parsing and the ranking model (pure parts).

:mod:`~engramdb.tools.specs` reads OpenAI function/tool JSON, MCP ``tools/list`` results and
plain JSON Schema into :class:`ToolSpec`; :mod:`~engramdb.tools.rank` holds the lexical
index, the features and the fitted fusion that :meth:`engramdb.Memory.recall_tools` uses.
"""

from engramdb.tools.specs import ToolSpec, load_specs, spec_text

__all__ = ["ToolSpec", "load_specs", "spec_text"]
