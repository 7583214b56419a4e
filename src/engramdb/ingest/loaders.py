"""Load files and folders into :class:`~engramdb.types.Record` objects.

Supported files, chosen by extension (case-insensitive):

* ``.txt``, ``.text``, ``.md``, ``.markdown``: the whole file is one record (Markdown is
  kept as written).
* ``.html``, ``.htm``: the visible text, with block structure as line and paragraph
  breaks; the ``<title>`` goes into ``meta["title"]``.
* ``.json``: a record, a list of records, a chat transcript or a list of transcripts.
* ``.jsonl``, ``.ndjson``: one record (or one chat turn, or one transcript) per line.

JSON shapes are detected by keys (see :func:`load_records`). A list of objects that all
have ``speaker`` or ``role`` plus a text field is a chat transcript: one record per turn
with ``chunk=False``. So LoCoMo's flattened ``turns.jsonl`` rows
(``{conv, session, date_time, dia_id, speaker, text}``) load as chat turns: the line
index is the ordinal, ``date_time`` ("1:56 pm on 8 May, 2023") becomes ``event_time``,
and ``conv``, ``session``, ``dia_id`` and ``speaker`` stay in ``meta``. The raw
``locomo10.json`` nests sessions under ``conversation`` with no text field, so it is
rejected with a message that lists its fields.

Every record's ``source`` is the file's resolved path, ``document`` defaults to it, and
``event_time`` defaults to the file's modification time. Text is passed through
:func:`~engramdb.ingest.normalize.normalize_text`. Files must be UTF-8 (a BOM is
allowed; UTF-16 with a BOM is decoded too). An empty or blank file yields no records.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engramdb.errors import IngestError
from engramdb.ingest._html import html_to_text
from engramdb.ingest._records import RecordContext, records_from_json, text_keys
from engramdb.ingest.normalize import normalize_text
from engramdb.types import Record

__all__ = ["SUPPORTED_EXTENSIONS", "load_path"]

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 8192
_MAX_CONTROL_RATIO = 0.1
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b") + b"\x7f"


@dataclass(frozen=True, slots=True)
class _File:
    """A decoded file, ready for a loader."""

    source: str
    text: str
    mtime: float
    text_field: str

    def context(self, lines: Sequence[int] | None = None) -> RecordContext:
        return RecordContext(
            self.source, self.source, self.mtime, text_keys(self.text_field), lines
        )


# --- loaders, one per file type ----------------------------------------------------------


def _load_text(file: _File) -> list[Record]:
    text = normalize_text(file.text)
    if not text:
        return []
    return [Record(text=text, source=file.source, document=file.source, event_time=file.mtime)]


def _load_html(file: _File) -> list[Record]:
    text, title = html_to_text(file.text)
    if not text:
        return []
    meta = {"title": title} if title else {}
    return [
        Record(
            text=text, source=file.source, document=file.source, event_time=file.mtime, meta=meta
        )
    ]


def _load_json(file: _File) -> list[Record]:
    if not file.text.strip():
        return []
    try:
        value = json.loads(file.text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            path=file.source,
            line=exc.lineno,
        ) from exc
    return records_from_json(value, file.context())


def _load_jsonl(file: _File) -> list[Record]:
    rows: list[object] = []
    lines: list[int] = []
    for number, line in enumerate(file.text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"malformed JSON line: {exc.msg} (column {exc.colno})",
                path=file.source,
                line=number,
            ) from exc
        lines.append(number)
    return records_from_json(rows, file.context(lines)) if rows else []


_LOADERS: dict[str, Callable[[_File], list[Record]]] = {
    ".txt": _load_text,
    ".text": _load_text,
    ".md": _load_text,
    ".markdown": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
    ".json": _load_json,
    ".jsonl": _load_jsonl,
    ".ndjson": _load_jsonl,
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(_LOADERS))
"""File extensions :func:`load_path` reads."""


# --- reading and decoding ----------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError as exc:
        raise IngestError("permission denied: the file is not readable", path=path) from exc
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc


def _looks_binary(data: bytes) -> bool:
    """NUL bytes anywhere, or more than 10% control bytes in the first 8 KiB."""
    if b"\x00" in data:
        return True
    head = data[:_SNIFF_BYTES]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > _MAX_CONTROL_RATIO * len(head)


def _invalid_utf8(data: bytes, exc: UnicodeDecodeError, path: Path) -> IngestError:
    offset = exc.start
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return IngestError(
        f"invalid UTF-8 at byte offset {offset} (line {line}, column {column}): "
        f"byte 0x{data[offset]:02x} ({exc.reason}); save the file as UTF-8",
        path=path,
        line=line,
    )


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(f"invalid UTF-16 at byte offset {exc.start}", path=path) from exc
    if _looks_binary(data):
        raise IngestError(
            "binary file (NUL or control bytes); only UTF-8 text files can be loaded", path=path
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid_utf8(data, exc, path) from exc


def _load_file(path: Path, text_field: str) -> list[Record]:
    loader = _LOADERS[path.suffix.lower()]
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
    source = str(path.resolve())
    text = _decode(_read_bytes(path), Path(source))
    records = loader(_File(source, text, mtime, text_field))
    if not records:
        logger.debug("%s: no text, no records", source)
    return records


# --- directories -------------------------------------------------------------------------

_GLOB_TOKEN_RE = re.compile(r"\*\*/|\*\*|\*|\?|\[[^\]/]+\]|[^*?\[]+|\[")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: ``*`` and ``?`` stay within one path segment, ``**`` spans several."""
    parts = []
    for token in _GLOB_TOKEN_RE.findall(pattern.strip("/")):
        if token == "**/":
            parts.append("(?:.*/)?")
        elif token == "**":
            parts.append(".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        elif token.startswith("[") and len(token) > 2:
            parts.append("[^" + token[2:] if token[1] == "!" else token)
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class _Patterns:
    """Glob patterns, gitignore-style: a pattern without ``/`` matches a name at any depth."""

    anchored: tuple[re.Pattern[str], ...]
    names: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, patterns: Sequence[str]) -> _Patterns:
        if isinstance(patterns, str):
            patterns = (patterns,)
        anchored = tuple(_glob_regex(p) for p in patterns if "/" in p.strip("/"))
        names = tuple(_glob_regex(p) for p in patterns if "/" not in p.strip("/"))
        return cls(anchored, names)

    def __bool__(self) -> bool:
        return bool(self.anchored or self.names)

    def match(self, relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return any(p.fullmatch(relative) for p in self.anchored) or any(
            p.fullmatch(name) for p in self.names
        )


def _raise_walk_error(exc: OSError) -> None:
    raise IngestError(f"cannot list the directory: {exc.strerror or exc}", path=exc.filename)


def _walk(root: Path, include: _Patterns, exclude: _Patterns) -> list[tuple[str, Path]]:
    """Supported, non-hidden files under ``root`` that pass the patterns, sorted by path."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root, onerror=_raise_walk_error):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = [d for d in dirs if not d.startswith(".") and not exclude.match(prefix + d)]
        for name in files:
            relative = prefix + name
            if name.startswith(".") or exclude.match(relative):
                continue
            if include and not include.match(relative):
                continue
            if Path(name).suffix.lower() in _LOADERS:
                found.append((relative, Path(folder, name)))
            else:
                logger.debug("%s: unsupported file type, skipped", Path(folder, name))
    return sorted(found)


def _load_directory(
    root: Path, include: Sequence[str], exclude: Sequence[str], text_field: str
) -> list[Record]:
    files = _walk(root, _Patterns.compile(include), _Patterns.compile(exclude))
    if not files:
        raise IngestError(
            "no loadable files in the directory (after hidden files, include and exclude; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)})",
            path=root,
        )
    return [record for _, path in files for record in _load_file(path, text_field)]


def load_path(
    path: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    text_field: str = "text",
) -> list[Record]:
    """Load a file, or every supported file under a directory, into records.

    Directories are walked recursively in sorted path order. Hidden files and folders
    (names starting with ``.``) and files of unsupported types are skipped. ``include``
    and ``exclude`` are glob patterns matched against paths relative to the directory
    (``/``-separated): ``*`` and ``?`` match within one path segment, ``**`` across
    segments, and a pattern without ``/`` matches a file or folder name at any depth, as
    in ``.gitignore``. With ``include`` given, only files matching one of its patterns
    load; anything matching ``exclude`` is skipped (an excluded folder is not entered).
    Both are ignored when ``path`` is a file.

    Args:
        path: a file or a directory.
        include: glob patterns a file must match (any of them).
        exclude: glob patterns of files and folders to skip.
        text_field: the preferred text field of JSON records (``"text"`` and
            ``"content"`` are also tried).

    Returns:
        The records of every file, in path order and, within a file, in file order.

    Raises:
        IngestError: the path does not exist; a file named explicitly has an unsupported
            extension; a directory has no loadable files; a file is unreadable, binary, not
            valid UTF-8 (with the byte offset and line) or malformed JSON (with line and
            column); a JSON record has no text field (the message lists its fields); a
            time field cannot be parsed; a non-empty JSON file has no text in any record.

    Example:
        >>> records = load_path("notes/", include=["*.md"], exclude=["drafts"])  # doctest: +SKIP
    """
    target = Path(path)
    if not target.exists():
        raise IngestError("no such file or directory", path=target)
    if target.is_dir():
        return _load_directory(target, include, exclude, text_field)
    if target.suffix.lower() not in _LOADERS:
        raise IngestError(
            f"unsupported file type {target.suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}",
            path=target,
        )
    return _load_file(target, text_field)
