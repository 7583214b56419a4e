"""HTML to text: visible text with block structure kept as line and paragraph breaks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from engramdb.ingest.normalize import normalize_text

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

__all__ = ["html_to_text"]

_DROP = frozenset(
    {"head", "title", "script", "style", "noscript", "template", "svg", "math", "iframe",
     "object", "canvas", "select", "button"}
)  # fmt: skip
_BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "details", "dialog", "div", "dl",
     "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
     "header", "hgroup", "hr", "main", "nav", "ol", "p", "pre", "section", "summary",
     "table", "ul"}
)  # fmt: skip
_LINES = frozenset({"br", "li", "tr", "dt", "dd", "caption", "option"})
_CELLS = frozenset({"td", "th"})

# Private-use characters stand for breaks while the text is assembled.
_PARAGRAPH, _LINE = "\ue000", "\ue001"
_BREAK_RUN_RE = re.compile(
    f"[\\s{_PARAGRAPH}{_LINE}]*[{_PARAGRAPH}{_LINE}][\\s{_PARAGRAPH}{_LINE}]*"
)
_SPACE_RE = re.compile(r"\s+")


def _separator(tag: str) -> str:
    if tag in _BLOCKS:
        return _PARAGRAPH
    if tag in _LINES:
        return _LINE
    return " " if tag in _CELLS else ""


class _Walker:
    """Collect text in document order; an explicit stack avoids recursion limits."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.in_pre = 0

    def run(self, root: LexborNode) -> str:
        stack: list[LexborNode | str | int] = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                self.parts.append(item)
            elif isinstance(item, int):
                self.in_pre += item
            else:
                self._visit(item, stack)
        return "".join(self.parts)

    def _visit(self, node: LexborNode, stack: list[LexborNode | str | int]) -> None:
        if node.is_text_node:
            text = (node.text(deep=False) or "").replace(_PARAGRAPH, "").replace(_LINE, "")
            self.parts.append(text if self.in_pre else _SPACE_RE.sub(" ", text))
            return
        tag = node.tag
        if not node.is_element_node or tag is None or tag in _DROP:
            return
        separator = _separator(tag)
        self.parts.append(separator)
        stack.append(separator)
        if tag == "pre":
            self.in_pre += 1
            stack.append(-1)
        stack.extend(reversed(list(node.iter(include_text=True))))


def _breaks(match: re.Match[str]) -> str:
    return "\n\n" if _PARAGRAPH in match.group() else "\n"


def html_to_text(html: str) -> tuple[str, str | None]:
    """Extract the visible text and the title of an HTML document.

    Scripts, styles, ``noscript``, templates, embedded SVG/MathML and form controls are
    dropped. Block elements (paragraphs, headings, sections, lists, tables) become
    paragraph breaks; list items, table rows and ``<br>`` become line breaks; table cells
    are separated by spaces. Whitespace collapses as a browser shows it, except inside
    ``<pre>``; the result is passed through :func:`normalize_text`.

    Args:
        html: the document.

    Returns:
        ``(text, title)``; ``title`` is ``None`` when the document has none.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = normalize_text(_SPACE_RE.sub(" ", title_node.text())) if title_node else ""
    root = tree.body or tree.root
    text = _Walker().run(root) if root is not None else ""
    return normalize_text(_BREAK_RUN_RE.sub(_breaks, text)), title or None
