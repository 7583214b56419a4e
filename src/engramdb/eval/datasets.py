"""Data set loaders for retrieval evaluation: BEIR folders and multi-hop QA (MuSiQue).

Every loader checks what it reads and fails with :class:`EvalDataError`, whose message
names the file and, for line-based files, the 1-based line.

Layouts:
    * **BEIR**: ``corpus.jsonl[.gz]`` (``_id``, ``title``, ``text``), ``queries.jsonl[.gz]``
      (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id  corpus-id  score``, an
      optional header line, graded or binary).
    * **MuSiQue as HippoRAG ships it**: ``<name>_corpus.json`` (a list of ``{title, text}``)
      and ``<name>.json`` (a list of questions with ``paragraphs``, each
      ``{title, paragraph_text, is_supporting}``). Supporting paragraphs are matched to
      corpus passages by exact ``(title, text)``; a passage reads ``"<title>\\n<text>"``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engramdb.errors import IngestError

__all__ = [
    "KINDS",
    "Document",
    "EvalDataError",
    "Query",
    "RetrievalSet",
    "checksum",
    "detect_kind",
    "find_file",
    "first_element",
    "is_longmemeval",
    "load_beir",
    "load_multihop",
    "read_json",
    "read_jsonl",
]

KINDS = (
    "beir",
    "multihop",
    "locomo",
    "longmemeval",
    "updates",
    "needle",
    "sort",
    "recognition",
    "retention",
    "tools",
)
"""The evaluation kinds: six data set families and four probes built from books."""

PROBE_KINDS = ("needle", "sort", "recognition", "retention")


class EvalDataError(IngestError):
    """An evaluation data set is missing a file or holds a malformed or inconsistent row.

    Attributes:
        path: the file (or folder) at fault.
        line: the 1-based line in that file, when the file is line-based.
    """

    name = "EvalData"


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One passage of a retrieval corpus."""

    id: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One query with its graded judgments (document id -> grade; > 0 is relevant)."""

    id: str
    text: str
    qrels: Mapping[str, int]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalSet:
    """A corpus, its judged queries and the files they were read from."""

    name: str
    documents: tuple[Document, ...]
    queries: tuple[Query, ...]
    files: tuple[Path, ...]


# -- reading ------------------------------------------------------------------------------


def find_file(folder: Path, *names: str) -> Path:
    """The first of ``names`` that exists in ``folder``.

    Raises:
        EvalDataError: none of them exists.
    """
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise EvalDataError(f"missing file {' or '.join(names)}", path=folder)


def _open_text(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a ``.jsonl`` or ``.jsonl.gz`` file.

    Raises:
        EvalDataError: the file is unreadable, or a line is not a JSON object.
    """
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                yield number, _json_object(line, path, number)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read: {exc}", path=path) from exc


def _json_object(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"invalid JSON: {exc.msg}", path=path, line=number) from exc
    if not isinstance(value, dict):
        raise EvalDataError(
            f"expected a JSON object, got {type(value).__name__}", path=path, line=number
        )
    return value


def read_json(path: Path) -> Any:
    """The JSON value in ``path``.

    Raises:
        EvalDataError: the file is unreadable or not JSON (the message gives the line).
    """
    try:
        with _open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read: {exc}", path=path) from exc


def field_str(row: Mapping[str, Any], key: str, path: Path, line: int | None) -> str:
    """``row[key]`` as a string (ids may be written as numbers).

    Raises:
        EvalDataError: the field is missing or not a string or number.
    """
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        shown = "missing" if value is None else f"a {type(value).__name__}"
        raise EvalDataError(f"field {key!r} must be a string, got {shown}", path=path, line=line)
    return str(value)


def checksum(files: Iterable[Path], root: Path) -> tuple[str, dict[str, str]]:
    """SHA-256 of each file and one digest over all of them (name and content, sorted).

    Args:
        files: the files a run read.
        root: names are recorded relative to this folder.

    Returns:
        ``(combined digest, {relative name: file digest})``.
    """
    per_file: dict[str, str] = {}
    for path in sorted(set(files)):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        per_file[name] = digest.hexdigest()
    combined = hashlib.sha256()
    for name, digest_hex in sorted(per_file.items()):
        combined.update(f"{name}\0{digest_hex}\n".encode())
    return combined.hexdigest(), per_file


# -- kind detection -------------------------------------------------------------------------


_FIRST_ELEMENT_LIMIT = 64 << 20
"""How many bytes :func:`first_element` reads at most looking for a list's first element."""


def first_element(path: Path, *, limit: int = _FIRST_ELEMENT_LIMIT) -> Any:
    """The first element of the JSON list in ``path``, read without loading the whole file.

    Returns:
        The element, or ``None`` when the file is not a JSON list, is empty, or its first
        element is not complete within ``limit`` bytes.
    """
    decoder = json.JSONDecoder()
    text, size = "", 1 << 16
    try:
        with path.open(encoding="utf-8") as fh:
            while len(text) < limit:
                chunk = fh.read(size)
                text += chunk
                body = text.lstrip()
                if body and not body.startswith("["):
                    return None
                try:
                    return decoder.raw_decode(body[1:].lstrip())[0]
                except json.JSONDecodeError:
                    if not chunk:
                        return None
                size = min(size * 2, 1 << 24)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def is_longmemeval(path: Path) -> bool:
    """Whether ``path`` is a ``.json`` file in LongMemEval's layout: a list whose first
    element has ``haystack_sessions``."""
    if not (path.is_file() and path.name.endswith(".json")):
        return False
    first = first_element(path)
    return isinstance(first, dict) and "haystack_sessions" in first


def _detect_file(path: Path) -> str:
    if is_longmemeval(path):
        return "longmemeval"
    raise EvalDataError(
        "not a data set: a file must be LongMemEval's JSON (a list of questions with "
        "haystack_sessions); other kinds read a folder",
        path=path,
    )


def detect_kind(path: Path) -> str:
    """The evaluation kind a data folder (or LongMemEval file) holds.

    ``corpus.jsonl`` with ``demos.jsonl`` → tools; ``corpus.jsonl`` → beir; ``*_corpus.json``
    → multihop; ``turns.jsonl`` + ``qa.jsonl``
    → locomo, or updates with ``truth.jsonl``; a ``.json`` file (or a folder holding one
    ``.json`` file) whose first element has ``haystack_sessions`` → longmemeval.

    Raises:
        EvalDataError: the path is missing or its layout is not one the harness reads;
            a folder of books needs an explicit probe kind.
    """
    if path.is_file():
        return _detect_file(path)
    if not path.is_dir():
        raise EvalDataError("not a data set folder (it does not exist)", path=path)
    names = {p.name for p in path.iterdir()}
    if {"corpus.jsonl", "demos.jsonl"} <= names:
        return "tools"
    if names & {"corpus.jsonl", "corpus.jsonl.gz"}:
        return "beir"
    if any(n.endswith("_corpus.json") for n in names):
        return "multihop"
    if {"turns.jsonl", "qa.jsonl"} <= names:
        return "updates" if "truth.jsonl" in names else "locomo"
    if names & {"paragraphs.jsonl", "paragraphs.jsonl.gz"}:
        raise EvalDataError(
            f"a book corpus: choose a probe with --kind ({', '.join(PROBE_KINDS)})", path=path
        )
    jsons = sorted(n for n in names if n.endswith(".json"))
    if len(jsons) == 1 and is_longmemeval(path / jsons[0]):
        return "longmemeval"
    raise EvalDataError(
        "unknown data set layout: expected corpus.jsonl (BEIR), *_corpus.json (MuSiQue), "
        "turns.jsonl + qa.jsonl (LoCoMo; with truth.jsonl, updates), one LongMemEval .json "
        "or paragraphs.jsonl (books)",
        path=path,
    )


# -- BEIR -----------------------------------------------------------------------------------


def _beir_corpus(path: Path) -> tuple[Document, ...]:
    documents: list[Document] = []
    seen: set[str] = set()
    for line, row in read_jsonl(path):
        doc_id = field_str(row, "_id", path, line)
        if doc_id in seen:
            raise EvalDataError(f"duplicate document id {doc_id!r}", path=path, line=line)
        seen.add(doc_id)
        title, text = row.get("title") or "", row.get("text")
        if not isinstance(text, str) or not isinstance(title, str):
            raise EvalDataError("fields 'title' and 'text' must be strings", path=path, line=line)
        documents.append(Document(id=doc_id, text=f"{title} {text}".strip()))
    if not documents:
        raise EvalDataError("the corpus is empty", path=path)
    return tuple(documents)


def _beir_queries(path: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    queries: dict[str, tuple[str, dict[str, Any]]] = {}
    for line, row in read_jsonl(path):
        query_id = field_str(row, "_id", path, line)
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise EvalDataError("field 'text' must be non-empty text", path=path, line=line)
        meta = row.get("metadata")
        queries[query_id] = (text, dict(meta) if isinstance(meta, dict) else {})
    return queries


def _qrels_row(line: str, path: Path, number: int) -> tuple[str, str, int] | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 3:
        raise EvalDataError(
            f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(parts)}",
            path=path,
            line=number,
        )
    try:
        return parts[0], parts[1], int(parts[2])
    except ValueError:
        if number == 1:
            return None  # the header line
        raise EvalDataError(
            f"score must be an integer, got {parts[2]!r}", path=path, line=number
        ) from None


def read_qrels(
    path: Path, queries: Mapping[str, object], documents: set[str]
) -> dict[str, dict[str, int]]:
    """Judgments from a TREC-style ``qrels/*.tsv``, checked against the known ids.

    Raises:
        EvalDataError: a malformed line, or a query or document id that does not exist.
    """
    qrels: dict[str, dict[str, int]] = {}
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = _qrels_row(line, path, number)
                if row is None:
                    continue
                query_id, doc_id, grade = row
                if query_id not in queries:
                    raise EvalDataError(f"unknown query id {query_id!r}", path=path, line=number)
                if doc_id not in documents:
                    raise EvalDataError(f"unknown corpus id {doc_id!r}", path=path, line=number)
                qrels.setdefault(query_id, {})[doc_id] = grade
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"cannot read: {exc}", path=path) from exc
    if not qrels:
        raise EvalDataError("no judgments", path=path)
    return qrels


def load_beir(path: Path, *, split: str = "test") -> RetrievalSet:
    """A BEIR folder: the queries judged in ``qrels/<split>.tsv``, in file order.

    A document reads ``"<title> <text>"``.

    Raises:
        EvalDataError: a missing file, a malformed row or a judgment naming an unknown id.
    """
    corpus_file = find_file(path, "corpus.jsonl", "corpus.jsonl.gz")
    queries_file = find_file(path, "queries.jsonl", "queries.jsonl.gz")
    qrels_file = find_file(path / "qrels", f"{split}.tsv")
    documents = _beir_corpus(corpus_file)
    texts = _beir_queries(queries_file)
    qrels = read_qrels(qrels_file, texts, {d.id for d in documents})
    queries = tuple(
        Query(id=qid, text=texts[qid][0], qrels=judged, meta=texts[qid][1])
        for qid, judged in qrels.items()
    )
    return RetrievalSet(
        name=path.name,
        documents=documents,
        queries=queries,
        files=(corpus_file, queries_file, qrels_file),
    )


# -- multi-hop (MuSiQue, HippoRAG layout) ----------------------------------------------------


def _musique_files(path: Path) -> tuple[Path, Path]:
    corpora = sorted(p for p in path.glob("*_corpus.json"))
    if not corpora:
        raise EvalDataError("missing file *_corpus.json (the passage corpus)", path=path)
    corpus = corpora[0]
    questions = path / corpus.name.replace("_corpus.json", ".json")
    if not questions.is_file():
        raise EvalDataError(f"missing file {questions.name} (the questions)", path=path)
    return corpus, questions


def _musique_corpus(path: Path) -> tuple[tuple[Document, ...], dict[tuple[str, str], str]]:
    rows = read_json(path)
    if not isinstance(rows, list) or not rows:
        raise EvalDataError("expected a non-empty JSON list of {title, text}", path=path)
    documents: list[Document] = []
    index: dict[tuple[str, str], str] = {}
    for number, row in enumerate(rows):
        if not (
            isinstance(row, dict)
            and isinstance(row.get("title"), str)
            and isinstance(row.get("text"), str)
        ):
            raise EvalDataError(
                f"passage #{number} must be an object with string title and text", path=path
            )
        doc_id = str(number)
        documents.append(Document(id=doc_id, text=f"{row['title']}\n{row['text']}"))
        index.setdefault((row["title"], row["text"]), doc_id)
    return tuple(documents), index


def _musique_query(
    row: Any, number: int, path: Path, index: Mapping[tuple[str, str], str]
) -> Query:
    if not isinstance(row, dict) or not isinstance(row.get("paragraphs"), list):
        raise EvalDataError(
            f"question #{number} must be an object with a 'paragraphs' list", path=path
        )
    query_id = field_str(row, "id", path, None)
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalDataError(f"question #{number} ({query_id}) has no 'question' text", path=path)
    gold: dict[str, int] = {}
    for para in row["paragraphs"]:
        if not isinstance(para, dict) or not para.get("is_supporting"):
            continue
        key = (para.get("title"), para.get("paragraph_text"))
        if key not in index:
            raise EvalDataError(
                f"question #{number} ({query_id}): supporting paragraph {key[0]!r} "
                "is not in the corpus",
                path=path,
            )
        gold[index[key]] = 1  # type: ignore[index]
    if not gold:
        raise EvalDataError(
            f"question #{number} ({query_id}) has no supporting paragraph", path=path
        )
    hops = query_id.split("hop", 1)[0] if "hop" in query_id else ""
    meta = {"answer": row.get("answer"), "hops": int(hops) if hops.isdigit() else None}
    return Query(id=query_id, text=question, qrels=gold, meta=meta)


def load_multihop(path: Path) -> RetrievalSet:
    """A multi-hop QA folder: MuSiQue as HippoRAG ships it, or a BEIR view of one.

    Raises:
        EvalDataError: a missing file, a malformed record or a supporting paragraph that
            is not in the corpus.
    """
    if any((path / name).is_file() for name in ("corpus.jsonl", "corpus.jsonl.gz")):
        return load_beir(path)
    corpus_file, questions_file = _musique_files(path)
    documents, index = _musique_corpus(corpus_file)
    rows = read_json(questions_file)
    if not isinstance(rows, list) or not rows:
        raise EvalDataError("expected a non-empty JSON list of questions", path=questions_file)
    queries = tuple(
        _musique_query(row, number, questions_file, index) for number, row in enumerate(rows)
    )
    return RetrievalSet(
        name=path.name, documents=documents, queries=queries, files=(corpus_file, questions_file)
    )
