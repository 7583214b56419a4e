"""Tool and demonstration memories (:meth:`Memory.add_tools`, ``add_demo``, ``recall_tools``,
``recall_demos``).

Tools live in their own table, one row per version: re-adding a tool whose name and server
are stored with the same spec writes nothing; a changed spec adds a version and closes the
previous one (``valid_to``, ``superseded_by``), so a name is recalled once, as its current
version. Tool versions are not merged by text as memories are: two tools that differ only in
a parameter's type are two tools.

Demonstrations (a request and the calls it led to) attach to tools by name (and server, when
the call gives one), at read time, so a new version of a tool keeps the usage of the old.

Recall scores every current tool of the namespace by :func:`engramdb.tools.rank.features`
and ranks them by a :class:`~engramdb.tools.rank.Fusion` fitted from the namespace's own
demonstrations (each asked with itself left out); with fewer than :data:`MIN_DEMOS` of them,
by :data:`~engramdb.tools.rank.DEFAULT_FUSION` (text only). The index is built in memory on
first use and rebuilt when the namespace's tools or demonstrations change.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from engramdb.embed.base import Embedder
from engramdb.errors import InvalidInputError
from engramdb.rerank.mmr import mmr_order
from engramdb.store.sqlite import SQLiteStore, in_chunks
from engramdb.tools.hits import (
    AddToolsResult,
    Demo,
    DemoHit,
    DemoHits,
    Tool,
    ToolHit,
    ToolHits,
)
from engramdb.tools.rank import (
    DEFAULT_FUSION,
    Fusion,
    LexicalIndex,
    Usage,
    features,
    fit_fusion,
    fit_logistic,
    matvec,
)
from engramdb.tools.specs import ToolSpec, load_specs, spec_text

__all__ = ["MIN_DEMOS", "USE", "ToolBook", "check_calls", "fit_demos", "fit_tools"]

MIN_DEMOS = 20
"""Demonstrations a namespace needs before its fusion is fitted from them."""
USE = ("dense", "lexical", "matched", "pooled")
"""The features the fitted fusion combines (not ``used``: fitted on tools that mostly have
usage, it would hold back every tool added since)."""
_FIT_SAMPLE = 300
_REFIT = 0.1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tools (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT NOT NULL,
    server        TEXT NOT NULL DEFAULT '',
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    parameters    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(parameters)),
    spec          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec)),
    digest        TEXT NOT NULL,
    text          TEXT NOT NULL,
    valid_from    REAL NOT NULL,
    valid_to      REAL,
    superseded_by INTEGER REFERENCES tools (id)
);
CREATE INDEX IF NOT EXISTS tools_current ON tools (namespace, server, name) WHERE valid_to IS NULL;
CREATE TABLE IF NOT EXISTS tool_demos (
    id        INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    request   TEXT NOT NULL,
    calls     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(calls)),
    answer    TEXT,
    meta      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    time      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tool_demos_namespace ON tool_demos (namespace);
CREATE TABLE IF NOT EXISTS tool_fusions (
    namespace TEXT PRIMARY KEY,
    demos     INTEGER NOT NULL,
    tools     INTEGER NOT NULL,
    model     TEXT NOT NULL CHECK (json_valid(model))
);
"""

_TOOL_COLUMNS = (
    "id, namespace, name, server, description, parameters, spec, valid_from, valid_to, "
    "superseded_by"
)


def _hash(kind: str, text: str) -> str:
    return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()


def _tool(row: Sequence[Any], demos: int = 0) -> Tool:
    return Tool(
        id=int(row[0]),
        namespace=row[1],
        name=row[2],
        server=row[3],
        description=row[4],
        parameters=json.loads(row[5]),
        spec=json.loads(row[6]),
        valid_from=float(row[7]),
        valid_to=None if row[8] is None else float(row[8]),
        superseded_by=None if row[9] is None else int(row[9]),
        demos=demos,
    )


def check_calls(calls: Any) -> tuple[dict[str, Any], ...]:
    """Normalise a demonstration's calls: ``[{"name", "arguments"?, "server"?}]`` (a single
    call may be given alone; ``arguments`` may be a JSON string, as OpenAI sends them).

    Raises:
        InvalidInputError: a call without a name, or arguments that are not an object.
    """
    if calls is None:
        return ()
    if isinstance(calls, Mapping):
        calls = [calls]
    if isinstance(calls, (str, bytes)) or not isinstance(calls, Sequence):
        raise InvalidInputError("calls must be a list of {name, arguments} objects")
    return tuple(_call(i, call) for i, call in enumerate(calls))


def _call(i: int, call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise InvalidInputError(f"call {i}: must be an object with a name")
    inner = call.get("function")
    body: Mapping[str, Any] = inner if isinstance(inner, Mapping) else call
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"call {i}: needs a name")
    args = body.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as exc:
            raise InvalidInputError(f"call {i}: arguments are not valid JSON") from exc
    if not isinstance(args, Mapping):
        raise InvalidInputError(f"call {i}: arguments must be an object")
    item: dict[str, Any] = {"name": name.strip(), "arguments": dict(args)}
    server = call.get("server")
    if server is not None:
        if not isinstance(server, str):
            raise InvalidInputError(f"call {i}: server must be a string")
        item["server"] = server
    return item


@dataclass(frozen=True, slots=True)
class _Index:
    """One namespace's tools, usage and fusion, as of ``signature``."""

    signature: tuple[int, ...]
    tools: tuple[Tool, ...]
    vectors: np.ndarray
    lexical: LexicalIndex
    usage: Usage
    demos: tuple[Demo, ...]
    demo_names: tuple[frozenset[str], ...]
    fusion: Fusion
    demo_fusion: Fusion


class ToolBook:
    """The tool and demonstration tables of one store, and their in-memory indexes."""

    def __init__(self, store: SQLiteStore, embedder: Embedder):
        self._store = store
        self._embedder = embedder
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()
        self._ready = False

    # -- schema ---------------------------------------------------------------------------

    def _exists(self) -> bool:
        if self._ready:
            return True
        row = self._store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tool_fusions'"
        ).fetchone()
        self._ready = row is not None
        return self._ready

    def _ensure(self) -> None:
        if not self._exists():
            with self._store.atomic(bump=False) as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            self._ready = True

    # -- writing --------------------------------------------------------------------------

    def add_tools(self, specs: Any, *, namespace: str, server: str | None) -> AddToolsResult:
        """See :meth:`Memory.add_tools`."""
        parsed = load_specs(specs, server=server)
        self._ensure()
        texts = [spec_text(s) for s in parsed]
        self._embed_missing([_hash("tool", t) for t in texts], texts, query=False)
        ids: list[int] = []
        added = unchanged = superseded = 0
        now = time.time()
        with self._store.atomic() as conn:
            for spec, text in zip(parsed, texts, strict=True):
                row = conn.execute(
                    "SELECT id, digest FROM tools WHERE namespace = ? AND server = ? AND name = ?"
                    " AND valid_to IS NULL",
                    (namespace, spec.server, spec.name),
                ).fetchone()
                if row is not None and row[1] == spec.digest:
                    ids.append(int(row[0]))
                    unchanged += 1
                    continue
                new = self._insert(conn, spec, text, namespace, now)
                if row is None:
                    added += 1
                else:
                    conn.execute(
                        "UPDATE tools SET valid_to = ?, superseded_by = ? WHERE id = ?",
                        (now, new, int(row[0])),
                    )
                    superseded += 1
                ids.append(new)
        return AddToolsResult(
            ids=tuple(ids), added=added, unchanged=unchanged, superseded=superseded
        )

    @staticmethod
    def _insert(conn: Any, spec: ToolSpec, text: str, namespace: str, now: float) -> int:
        cur = conn.execute(
            "INSERT INTO tools (namespace, server, name, description, parameters, spec, digest,"
            " text, valid_from) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                namespace,
                spec.server,
                spec.name,
                spec.description,
                json.dumps(spec.parameters, ensure_ascii=False),
                json.dumps(spec.spec, ensure_ascii=False, default=str),
                spec.digest,
                text,
                now,
            ),
        )
        return int(cur.lastrowid or 0)

    def add_demo(  # noqa: PLR0913 - one demonstration's fields
        self,
        request: str,
        calls: Any,
        answer: str | None,
        *,
        namespace: str,
        meta: Mapping[str, Any] | None,
    ) -> Demo:
        """See :meth:`Memory.add_demo`."""
        if not isinstance(request, str) or not request.strip():
            raise InvalidInputError("a demonstration needs a non-empty request")
        checked = check_calls(calls)
        if answer is not None and not isinstance(answer, str):
            raise InvalidInputError("answer must be a string")
        if not checked and not (answer or "").strip():
            raise InvalidInputError("a demonstration needs calls or an answer")
        try:
            meta_json = json.dumps(dict(meta or {}), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"meta must be JSON-serialisable: {exc}") from exc
        self._ensure()
        text = request.strip()
        self._embed_missing([_hash("request", text)], [text], query=True)
        now = time.time()
        with self._store.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO tool_demos (namespace, request, calls, answer, meta, time)"
                " VALUES (?,?,?,?,?,?)",
                (namespace, text, json.dumps(checked, ensure_ascii=False), answer, meta_json, now),
            )
            demo_id = int(cur.lastrowid or 0)
        return Demo(
            id=demo_id,
            namespace=namespace,
            request=text,
            calls=checked,
            answer=answer,
            meta=json.loads(meta_json),
            time=now,
        )

    def forget_demos(self, ids: Sequence[int]) -> int:
        """Delete demonstrations by id; returns how many were deleted."""
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, Integral)]
        if bad:
            raise InvalidInputError(f"demonstration ids must be integers, got {bad[0]!r}")
        if not self._exists() or not ids:
            return 0
        deleted = 0
        with self._store.atomic() as conn:
            for part in in_chunks([int(i) for i in ids]):
                marks = ",".join("?" * len(part))
                cur = conn.execute(f"DELETE FROM tool_demos WHERE id IN ({marks})", part)
                deleted += int(cur.rowcount)
        return deleted

    def _embed_missing(self, hashes: Sequence[str], texts: Sequence[str], *, query: bool) -> None:
        model = self._embedder.model_id
        with self._store.reading():
            have = self._store.cached_embeddings(model, list(dict.fromkeys(hashes)))
        todo = {h: t for h, t in zip(hashes, texts, strict=True) if h not in have}
        if not todo:
            return
        embed = self._embedder.embed_queries if query else self._embedder.embed_documents
        vectors = embed(list(todo.values()))
        if not self._store.readonly:
            with self._store.atomic(bump=False):
                self._store.put_embeddings(model, list(todo), vectors, replace=False)

    def _vectors(self, hashes: Sequence[str], texts: Sequence[str], *, query: bool) -> np.ndarray:
        model = self._embedder.model_id
        dim = self._embedder.dim
        if not hashes:
            return np.zeros((0, dim), dtype=np.float32)
        cached = self._store.cached_embeddings(model, list(dict.fromkeys(hashes)))
        missing = [i for i, h in enumerate(hashes) if h not in cached]
        if missing:  # dropped by maintenance: embed again (not cached on a read)
            embed = self._embedder.embed_queries if query else self._embedder.embed_documents
            for i, vec in zip(missing, embed([texts[i] for i in missing]), strict=True):
                cached[hashes[i]] = vec
        return np.vstack([cached[h] for h in hashes]).astype(np.float32)

    # -- reading --------------------------------------------------------------------------

    def tools(self, *, namespace: str | None, versions: bool) -> list[Tool]:
        """See :meth:`Memory.tools`."""
        if not self._exists():
            return []
        sql = f"SELECT {_TOOL_COLUMNS} FROM tools WHERE 1"
        params: list[Any] = []
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        if not versions:
            sql += " AND valid_to IS NULL"
        with self._store.reading():
            rows = self._store.conn.execute(sql + " ORDER BY namespace, name, server, id", params)
            tools = [_tool(r) for r in rows]
        counts: dict[int, int] = {}
        for ns in {t.namespace for t in tools}:
            index = self._index(ns)
            per = np.bincount(index.usage.pairs_tool, minlength=len(index.tools))
            counts.update({t.id: int(c) for t, c in zip(index.tools, per, strict=True)})
        return [
            Tool(**{**{f: getattr(t, f) for f in t.__slots__}, "demos": counts.get(t.id, 0)})
            for t in tools
        ]

    def demos(self, *, namespace: str) -> list[Demo]:
        """Every demonstration of ``namespace``, oldest first."""
        if not self._exists():
            return []
        with self._store.reading():
            return self._load_demos(namespace)

    def _load_demos(self, namespace: str) -> list[Demo]:
        rows = self._store.conn.execute(
            "SELECT id, namespace, request, calls, answer, meta, time FROM tool_demos"
            " WHERE namespace = ? ORDER BY id",
            (namespace,),
        )
        return [
            Demo(
                id=int(r[0]),
                namespace=r[1],
                request=r[2],
                calls=tuple(json.loads(r[3])),
                answer=r[4],
                meta=json.loads(r[5]),
                time=float(r[6]),
            )
            for r in rows
        ]

    def _signature(self, namespace: str) -> tuple[int, ...]:
        conn = self._store.conn
        a = conn.execute(
            "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM tools WHERE namespace = ?"
            " AND valid_to IS NULL",
            (namespace,),
        ).fetchone()
        b = conn.execute(
            "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM tool_demos WHERE namespace = ?",
            (namespace,),
        ).fetchone()
        return (int(a[0]), int(a[1]), int(b[0]), int(b[1]))

    def _index(self, namespace: str) -> _Index:
        with self._store.reading():
            signature = self._signature(namespace)
            with self._lock:
                index = self._indexes.get(namespace)
                if index is not None and index.signature == signature:
                    return index
                index = self._build(namespace, signature)
                self._indexes[namespace] = index
                return index

    def _build(self, namespace: str, signature: tuple[int, ...]) -> _Index:
        conn = self._store.conn
        rows = conn.execute(
            f"SELECT {_TOOL_COLUMNS}, text FROM tools WHERE namespace = ? AND valid_to IS NULL"
            " ORDER BY id",
            (namespace,),
        ).fetchall()
        tools = tuple(_tool(r) for r in rows)
        texts = [r[-1] for r in rows]
        vectors = self._vectors([_hash("tool", t) for t in texts], texts, query=False)
        lexical = LexicalIndex(texts)
        demos = tuple(self._load_demos(namespace))
        requests = [d.request for d in demos]
        req_vecs = self._vectors([_hash("request", r) for r in requests], requests, query=True)
        by_name: dict[str, list[int]] = {}
        for row, tool in enumerate(tools):
            by_name.setdefault(tool.name, []).append(row)
        pairs: list[tuple[int, int]] = []
        for d_row, demo in enumerate(demos):
            for call in demo.calls:
                for t_row in by_name.get(call["name"], ()):
                    if call.get("server") in (None, tools[t_row].server):
                        pairs.append((d_row, t_row))
        usage = Usage.build(req_vecs, pairs, requests, len(tools))
        names = tuple(frozenset(c["name"] for c in d.calls) for d in demos)
        fusion, demo_fusion = self._fusions(namespace, tools, vectors, lexical, usage, names)
        return _Index(signature, tools, vectors, lexical, usage, demos, names, fusion, demo_fusion)

    def _fusions(  # noqa: PLR0913 - the parts of an index
        self,
        namespace: str,
        tools: tuple[Tool, ...],
        vectors: np.ndarray,
        lexical: LexicalIndex,
        usage: Usage,
        names: tuple[frozenset[str], ...],
    ) -> tuple[Fusion, Fusion]:
        """The namespace's fitted fusions, reused while its demonstrations and tools have not
        grown or shrunk by more than 10% since they were fitted."""
        n_demos = len(names)
        default = (DEFAULT_FUSION, _DEFAULT_DEMO_FUSION)
        if n_demos < MIN_DEMOS or not tools:
            return default
        row = self._store.conn.execute(
            "SELECT demos, tools, model FROM tool_fusions WHERE namespace = ?", (namespace,)
        ).fetchone()
        if row is not None:
            old_d, old_t = int(row[0]), int(row[1])
            model = json.loads(row[2])
            near = (
                abs(n_demos - old_d) <= _REFIT * old_d and abs(len(tools) - old_t) <= _REFIT * old_t
            )
            if near and model["tools"]["use"] == list(USE):  # else fitted by another version
                return _fusion(model["tools"]), _fusion(model["demos"])
        fitted = fit_tools(vectors, lexical, usage, sample=_FIT_SAMPLE) or DEFAULT_FUSION
        demo_fit = fit_demos(usage, names, sample=_FIT_SAMPLE) or _DEFAULT_DEMO_FUSION
        if not self._store.readonly:
            model = json.dumps({"tools": _plain(fitted), "demos": _plain(demo_fit)})
            with self._store.atomic(bump=False) as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO tool_fusions (namespace, demos, tools, model)"
                    " VALUES (?,?,?,?)",
                    (namespace, n_demos, len(tools), model),
                )
        return fitted, demo_fit

    def features_of(self, request: str, *, namespace: str) -> tuple[tuple[Tool, ...], np.ndarray]:
        """The current tools of ``namespace`` and their features for ``request`` (for
        evaluation: ranking them by several fusions at once)."""
        _check(request, 1, None)
        if not self._exists():
            return (), np.zeros((0, 5))
        index = self._index(namespace)
        qvec = self._embedder.embed_queries([request])[0]
        return index.tools, features(qvec, request, index.vectors, index.lexical, index.usage)

    def fit(self, namespace: str, use: Sequence[str], *, sample: int = _FIT_SAMPLE) -> Fusion:
        """A fusion over ``use`` fitted from ``namespace``'s demonstrations as
        :meth:`recall_tools` fits its own (:data:`DEFAULT_FUSION` when there are too few)."""
        index = self._index(namespace)
        if len(index.demos) < MIN_DEMOS:
            return DEFAULT_FUSION
        fitted = fit_tools(index.vectors, index.lexical, index.usage, sample=sample, use=use)
        return DEFAULT_FUSION if fitted is None else fitted

    def fusion(self, namespace: str) -> Fusion:
        """The fusion ``recall_tools`` ranks ``namespace``'s tools by."""
        return self._index(namespace).fusion

    def recall_tools(  # noqa: PLR0913 - keyword-only options of one read
        self,
        request: str,
        *,
        k: int,
        namespace: str,
        min_relevance: float | None,
        among: Sequence[int | str] | None,
        fusion: Fusion | None = None,
    ) -> ToolHits:
        """See :meth:`Memory.recall_tools` (``fusion`` replaces the namespace's own)."""
        _check(request, k, min_relevance)
        if not self._exists():
            return _empty_tools(request, min_relevance)
        index = self._index(namespace)
        if not index.tools:
            return _empty_tools(request, min_relevance)
        qvec = self._embedder.embed_queries([request])[0]
        x = features(qvec, request, index.vectors, index.lexical, index.usage)
        model = fusion or index.fusion
        logits = model.logits(x)
        allowed = _among(index.tools, among)
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        order = np.argsort(-logits, kind="stable")[: min(k, int(np.isfinite(logits).sum()))]
        rel = 1.0 / (1.0 + np.exp(-np.clip(logits[order], -30, 30)))
        hits = [
            ToolHit(tool=index.tools[i], relevance=float(r), score=float(logits[i]))
            for i, r in zip(order, rel, strict=True)
        ]
        return _cut(ToolHits, request, hits, min_relevance, "tool")  # type: ignore[no-any-return]

    def recall_demos(  # noqa: PLR0913 - keyword-only options of one read
        self,
        request: str,
        *,
        k: int,
        namespace: str,
        min_relevance: float | None,
        lambda_: float,
        pool: int = 50,
    ) -> DemoHits:
        """See :meth:`Memory.recall_demos`."""
        _check(request, k, min_relevance)
        if not 0.0 <= lambda_ <= 1.0:
            raise InvalidInputError(f"lambda_ must be in [0, 1], got {lambda_}")
        if not self._exists():
            return _empty_demos(request, min_relevance)
        index = self._index(namespace)
        if not index.demos:
            return _empty_demos(request, min_relevance)
        qvec = self._embedder.embed_queries([request])[0]
        sims = matvec(index.usage.vectors, qvec)
        top = np.argsort(-sims, kind="stable")[:pool]
        picked = mmr_order(
            sims[top].astype(np.float64), index.usage.vectors[top], k=k, lambda_=lambda_
        )
        rows = [int(top[i]) for i in picked]
        rel = index.demo_fusion.relevance(_demo_x(sims[rows]))
        hits = [
            DemoHit(demo=index.demos[r], relevance=float(p), score=float(sims[r]))
            for r, p in zip(rows, rel, strict=True)
        ]
        return _cut(DemoHits, request, hits, min_relevance, "demonstration")  # type: ignore[no-any-return]


_DEFAULT_DEMO_FUSION = Fusion(use=("dense",), weights=(10.0,), bias=-7.0)
"""Demonstration relevance from its cosine while a namespace has too few to fit one."""


def _demo_x(sims: np.ndarray) -> np.ndarray:
    x = np.zeros((len(sims), 5))
    x[:, 0] = sims
    return x


def _plain(fusion: Fusion) -> dict[str, Any]:
    return {
        "use": list(fusion.use),
        "weights": list(fusion.weights),
        "bias": fusion.bias,
        "fitted_on": fusion.fitted_on,
    }


def _fusion(model: Mapping[str, Any]) -> Fusion:
    return Fusion(
        use=tuple(model["use"]),
        weights=tuple(float(w) for w in model["weights"]),
        bias=float(model["bias"]),
        fitted_on=int(model["fitted_on"]),
    )


def _sample(n: int, sample: int) -> list[int]:
    if n <= sample:
        return list(range(n))
    return sorted(np.random.default_rng(0).choice(n, size=sample, replace=False).tolist())


def fit_tools(
    vectors: np.ndarray,
    lexical: LexicalIndex,
    usage: Usage,
    *,
    sample: int,
    use: Sequence[str] = USE,
) -> Fusion | None:
    """A fusion over ``use`` fitted from (up to ``sample`` of) the usage's own requests, each
    asked with every request of its text left out; ``None`` without a request that called a
    known tool."""
    called: dict[int, list[int]] = {}
    for r, t in zip(usage.pairs_request.tolist(), usage.pairs_tool.tolist(), strict=True):
        called.setdefault(r, []).append(t)
    rows = [r for r in _sample(usage.vectors.shape[0], sample) if r in called]
    if not rows:
        return None
    texts = usage.texts
    return fit_fusion(
        use,
        vectors,
        lexical,
        usage,
        requests=[(usage.vectors[r], texts[r], called[r]) for r in rows],
    )


def fit_demos(usage: Usage, names: Sequence[frozenset[str]], *, sample: int) -> Fusion | None:
    """Demonstration relevance fitted from the store's own: for each sampled request, the
    cosine of its nearest other-text demonstration, labelled by whether they share a tool
    name; ``None`` when both labels are not present."""
    n = usage.vectors.shape[0]
    xs: list[float] = []
    ys: list[bool] = []
    for r in _sample(n, sample):
        sims = usage.vectors @ usage.vectors[r]
        sims[[i for i, t in enumerate(usage.texts) if t == usage.texts[r]]] = -np.inf
        j = int(np.argmax(sims))
        if not np.isfinite(sims[j]):
            continue
        xs.append(float(sims[j]))
        ys.append(bool(names[r] & names[j]))
    if len(set(ys)) < 2:
        return None
    w, b = fit_logistic(np.asarray(xs)[:, None], np.asarray(ys))
    return Fusion(use=("dense",), weights=(float(w[0]),), bias=b, fitted_on=len(xs))


def _check(request: str, k: int, min_relevance: float | None) -> None:
    if not isinstance(request, str) or not request.strip():
        raise InvalidInputError("the request must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be an integer >= 1, got {k!r}")
    if min_relevance is not None and not 0.0 <= min_relevance <= 1.0:
        raise InvalidInputError(f"min_relevance must be in [0, 1], got {min_relevance}")


def _among(tools: Sequence[Tool], among: Sequence[int | str] | None) -> np.ndarray | None:
    if among is None:
        return None
    if isinstance(among, (str, bytes)):
        raise InvalidInputError("among takes a list of tool ids or names")
    ids = {a for a in among if isinstance(a, int) and not isinstance(a, bool)}
    names = {a for a in among if isinstance(a, str)}
    if len(ids) + len(names) != len(set(among)):
        raise InvalidInputError("among takes tool ids (integers) or names (strings)")
    return np.array([t.id in ids or t.name in names for t in tools], dtype=bool)


def _cut(cls: Any, query: str, hits: list[Any], min_relevance: float | None, what: str) -> Any:
    if min_relevance is None:
        return cls(query=query, items=tuple(hits))
    kept = tuple(h for h in hits if h.relevance >= min_relevance)
    if kept:
        return cls(query=query, items=kept)
    best = max((h.relevance for h in hits), default=None)
    reason = f"no {what} has relevance >= {min_relevance:g}" + (
        f" (best {best:.3f})" if best is not None else f" (no {what}s stored)"
    )
    return cls(query=query, items=(), abstain=True, reason=reason)


def _empty_tools(request: str, min_relevance: float | None) -> ToolHits:
    return _cut(ToolHits, request, [], min_relevance, "tool")  # type: ignore[no-any-return]


def _empty_demos(request: str, min_relevance: float | None) -> DemoHits:
    return _cut(DemoHits, request, [], min_relevance, "demonstration")  # type: ignore[no-any-return]
