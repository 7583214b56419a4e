"""Loader for a book corpus in reading order: the raw material of the synthetic probes.

Layout: ``paragraphs.jsonl[.gz]`` (``{book, para, text}``, in reading order within each
book), optionally ``sentences.jsonl[.gz]`` (``{book, para, sent, text}``) and
``catalog.json`` (a list of ``{id, title, ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engramdb.eval.datasets import EvalDataError, field_str, find_file, read_json, read_jsonl

__all__ = ["BookCorpus", "Paragraph", "load_books", "load_sentences"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Paragraph:
    """One paragraph (or, from ``sentences.jsonl``, one sentence) of a book."""

    book: str
    index: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BookCorpus:
    """Paragraphs of every book in reading order, book titles, and the files read."""

    name: str
    titles: dict[str, str]
    paragraphs: tuple[Paragraph, ...]
    files: tuple[Path, ...]

    def by_book(self) -> dict[str, list[Paragraph]]:
        """Paragraphs grouped by book, each list in reading order."""
        out: dict[str, list[Paragraph]] = {}
        for para in self.paragraphs:
            out.setdefault(para.book, []).append(para)
        return out


def _int_field(row: dict[str, Any], key: str, path: Path, line: int) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EvalDataError(f"field {key!r} must be an integer", path=path, line=line)
    return value


def _read_units(path: Path, index_key: str) -> tuple[Paragraph, ...]:
    units: list[Paragraph] = []
    last: dict[str, int] = {}
    for line, row in read_jsonl(path):
        book = field_str(row, "book", path, line)
        index = _int_field(row, index_key, path, line)
        text = row.get("text")
        if not isinstance(text, str):
            raise EvalDataError("field 'text' must be a string", path=path, line=line)
        if index <= last.get(book, -1):
            raise EvalDataError(
                f"{index_key} {index} of book {book!r} is out of reading order",
                path=path,
                line=line,
            )
        last[book] = index
        units.append(Paragraph(book=book, index=index, text=text))
    if not units:
        raise EvalDataError("no rows", path=path)
    return tuple(units)


def _titles(path: Path) -> tuple[dict[str, str], tuple[Path, ...]]:
    catalog = path / "catalog.json"
    if not catalog.is_file():
        return {}, ()
    rows = read_json(catalog)
    if not isinstance(rows, list):
        raise EvalDataError("expected a JSON list of {id, title}", path=catalog)
    titles = {
        str(r["id"]): str(r.get("title", r["id"]))
        for r in rows
        if isinstance(r, dict) and "id" in r
    }
    return titles, (catalog,)


def load_books(path: Path) -> BookCorpus:
    """The paragraphs of a book folder.

    Raises:
        EvalDataError: a missing file, a malformed line, or paragraphs out of reading order.
    """
    if not path.is_dir():
        raise EvalDataError("not a data set folder (it does not exist or is a file)", path=path)
    paragraphs_file = find_file(path, "paragraphs.jsonl", "paragraphs.jsonl.gz")
    titles, catalog = _titles(path)
    paragraphs = _read_units(paragraphs_file, "para")
    return BookCorpus(
        name=path.name, titles=titles, paragraphs=paragraphs, files=(paragraphs_file, *catalog)
    )


def load_sentences(path: Path) -> tuple[tuple[Paragraph, ...], Path]:
    """The sentences of a book folder (``index`` is the sentence number in its book).

    Raises:
        EvalDataError: a missing file, a malformed line, or sentences out of order.
    """
    sentences_file = find_file(path, "sentences.jsonl", "sentences.jsonl.gz")
    return _read_units(sentences_file, "sent"), sentences_file
