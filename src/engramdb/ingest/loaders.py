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
allowed) or UTF-16 (with a BOM, or without one when the pattern of NUL bytes shows
mostly-ASCII UTF-16-LE or -BE text). An empty or blank file yields no records.

Limits: a file over :data:`MAX_FILE_BYTES` is refused, as is JSON nested deeper than
:data:`~engramdb.ingest.MAX_JSON_DEPTH`. A text file of any shape within the
cap loads as one record whose chunks are bounded (see
:func:`~engramdb.ingest.chunk.chunk_text`), whether or not it has lines, sentences or
spaces.
"""

from __future__ import annotations

import codecs
import errno
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engramdb.errors import IngestError
from engramdb.ingest._html import html_to_text
from engramdb.ingest._records import (
    MAX_JSON_DEPTH,
    RecordContext,
    json_depth_exceeds,
    records_from_json,
    text_keys,
)
from engramdb.ingest.normalize import normalize_text
from engramdb.types import Record

__all__ = ["MAX_FILE_BYTES", "SUPPORTED_EXTENSIONS", "load_path"]

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 128 * 1024 * 1024
"""Largest file :func:`load_path` reads (128 MiB); larger files are refused.

Loading holds the file's text in memory a few times over (bytes, text, normalized
text, chunks), so the cap keeps one file within a few hundred MiB; split bigger inputs.
"""
_SNIFF_BYTES = 8192
_MAX_CONTROL_RATIO = 0.1
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1b") + b"\x7f"
_CONTROL_CHARS = dict.fromkeys(_CONTROL_BYTES)
# BOM-less UTF-16: at least half of the code units have a NUL high byte (mostly-ASCII
# text), and NUL low bytes are at most a tenth as common.
_UTF16_MIN_NUL_SHARE = 0.5
_UTF16_MAX_OTHER_SHARE = 0.1


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


def _is_blank(text: str) -> bool:
    return not text or text.isspace()


def _too_deep(source: str, line: int | None = None) -> IngestError:
    return IngestError(
        f"JSON nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH); flatten the data",
        path=source,
        line=line,
    )


def _parse_json(text: str, source: str, line: int | None) -> object:
    """Parse one JSON value, refusing nesting deeper than ``MAX_JSON_DEPTH``.

    ``line`` is the JSONL line number, ``None`` for a whole JSON file.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if line is None:
            message = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        else:
            message = f"malformed JSON line: {exc.msg} (column {exc.colno})"
        raise IngestError(message, path=source, line=line or exc.lineno) from exc
    except RecursionError:
        # json gives up near the interpreter's recursion limit, far beyond MAX_JSON_DEPTH.
        raise _too_deep(source, line) from None
    # Nesting needs at least as many brackets as levels: most values skip the walk.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth_exceeds(value):
        raise _too_deep(source, line)
    return value


def _load_json(file: _File) -> list[Record]:
    if _is_blank(file.text):
        return []
    return records_from_json(_parse_json(file.text, file.source, None), file.context())


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each line, without listing them all at once."""
    start, number = 0, 1
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield number, text[start:end]
        start, number = end + 1, number + 1


def _load_jsonl(file: _File) -> list[Record]:
    rows: list[object] = []
    lines: list[int] = []
    for number, line in _lines(file.text):
        if not _is_blank(line):
            rows.append(_parse_json(line, file.source, number))
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


def _looks_binary_text(text: str) -> bool:
    """The same test on decoded text: U+0000 anywhere, or over 10% control characters."""
    if "\x00" in text:
        return True
    head = text[:_SNIFF_BYTES]
    controls = len(head) - len(head.translate(_CONTROL_CHARS))
    return controls > _MAX_CONTROL_RATIO * len(head)


def _utf16_without_bom(data: bytes) -> str | None:
    """``"utf-16-le"`` or ``"utf-16-be"`` when NUL bytes sit at odd or even offsets.

    Mostly-ASCII UTF-16 has a NUL in the high byte of most code units and almost never
    in the low byte; binary data and UTF-8 text (which has no NUL at all) do not show
    that pattern.
    """
    head = data[: _SNIFF_BYTES & ~1]
    units = len(head) // 2
    if units == 0 or len(data) % 2:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    for nuls, others, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls >= _UTF16_MIN_NUL_SHARE * units and others <= _UTF16_MAX_OTHER_SHARE * nuls:
            return encoding
    return None


def _binary(path: Path) -> IngestError:
    return IngestError(
        "binary file (NUL or control bytes); only UTF-8 or UTF-16 text files can be loaded",
        path=path,
    )


def _decode_utf16(data: bytes, encoding: str, path: Path) -> str:
    """Decode BOM-less UTF-16; data that does not decode to plain text is binary."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _binary(path) from exc
    if _looks_binary_text(text):
        raise _binary(path)
    return text


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
    if b"\x00" in data:
        encoding = _utf16_without_bom(data)
        if encoding is not None:
            return _decode_utf16(data, encoding, path)
    if _looks_binary(data):
        raise _binary(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid_utf8(data, exc, path) from exc


def _check_size(info: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise IngestError("not a regular file (a device, pipe or socket)", path=path)
    if info.st_size > MAX_FILE_BYTES:
        raise IngestError(
            f"file too large: {info.st_size:,} bytes, over the limit of {MAX_FILE_BYTES:,} "
            "bytes (MAX_FILE_BYTES); split it into smaller files",
            path=path,
        )


def _load_file(path: Path, text_field: str) -> list[Record]:
    loader = _LOADERS[path.suffix.lower()]
    try:
        info = path.stat()
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
    source = str(path.resolve())
    _check_size(info, Path(source))
    text = _decode(_read_bytes(path), Path(source))
    records = loader(_File(source, text, info.st_mtime, text_field))
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


def _is_followed_dir(path: Path) -> bool:
    """Whether to enter a listed directory: yes, unless it is a symbolic link.

    Links to directories are never followed, so a walk cannot enter a cycle; a link that
    points at one of its own ancestors (a loop) is reported as a warning.
    """
    if not path.is_symlink():
        return True
    try:
        loop = path.parent.resolve().is_relative_to(path.resolve(strict=True))
    except (OSError, RuntimeError):
        loop = True
    if loop:
        logger.warning("%s: symbolic link loop, skipped", path)
    else:
        logger.debug("%s: symbolic link to a directory, not followed", path)
    return False


def _is_loadable(path: Path) -> bool:
    """Whether a listed file can be read; looping or broken links and special files
    (pipes, sockets, devices) are skipped with a warning.
    """
    try:
        info = path.stat()
    except OSError as exc:
        if not path.is_symlink():
            return True  # let loading report the error
        problem = "symbolic link loop" if exc.errno == errno.ELOOP else "broken symbolic link"
        logger.warning("%s: %s, skipped", path, problem)
        return False
    if not stat.S_ISREG(info.st_mode):
        logger.warning("%s: not a regular file, skipped", path)
        return False
    return True


def _walk(root: Path, include: _Patterns, exclude: _Patterns) -> list[tuple[str, Path]]:
    """Supported, non-hidden files under ``root`` that pass the patterns, sorted by path."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root, onerror=_raise_walk_error):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and not exclude.match(prefix + d)
            and _is_followed_dir(Path(folder, d))
        ]
        for name in files:
            relative = prefix + name
            if name.startswith(".") or exclude.match(relative):
                continue
            if include and not include.match(relative):
                continue
            if Path(name).suffix.lower() not in _LOADERS:
                logger.debug("%s: unsupported file type, skipped", Path(folder, name))
            elif _is_loadable(Path(folder, name)):
                found.append((relative, Path(folder, name)))
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


def _missing(target: Path) -> str:
    """Why an existing-looking path cannot be reached."""
    if not target.is_symlink():
        return "no such file or directory"
    try:
        target.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
    return "broken symbolic link (its target does not exist)"


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
    Both are ignored when ``path`` is a file. Symbolic links to files are loaded (the
    record's source is the target); links to directories are not followed, so a walk
    never enters a cycle. Looping or broken links and special files (pipes, sockets)
    inside a directory are skipped with a logged warning.

    Args:
        path: a file or a directory.
        include: glob patterns a file must match (any of them).
        exclude: glob patterns of files and folders to skip.
        text_field: the preferred text field of JSON records (``"text"`` and
            ``"content"`` are also tried).

    Returns:
        The records of every file, in path order and, within a file, in file order.

    Raises:
        IngestError: the path does not exist or is a broken or looping link; a file named
            explicitly has an unsupported extension or is not a regular file; a directory
            has no loadable files; a file is larger than :data:`MAX_FILE_BYTES`,
            unreadable, binary, not valid UTF-8 (with the byte offset and line) or
            malformed JSON (with line and column); JSON is nested more than
            ``MAX_JSON_DEPTH`` levels deep (with the line, for JSONL); a JSON record has
            no text field (the message lists its fields); a time field cannot be parsed;
            a non-empty JSON file has no text in any record.

    Example:
        >>> records = load_path("notes/", include=["*.md"], exclude=["drafts"])  # doctest: +SKIP
    """
    target = Path(path)
    if not target.exists():
        raise IngestError(_missing(target), path=target)
    if target.is_dir():
        return _load_directory(target, include, exclude, text_field)
    if target.suffix.lower() not in _LOADERS:
        raise IngestError(
            f"unsupported file type {target.suffix or '(no extension)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}",
            path=target,
        )
    return _load_file(target, text_field)
