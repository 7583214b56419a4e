"""MiniLMEmbedder: model verification, batching helpers and the real model's behaviour."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engramdb.config import EmbedConfig
from engramdb.embed import MODEL_SHA256, MiniLMEmbedder, onnx, verify_model
from engramdb.errors import ConfigError, ModelError


def _fake(tmp_path: Path, content: bytes = b"not an onnx model") -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    return path


# --- verification (no model needed) ---------------------------------------------------------


def test_sha_mismatch_raises_model_error(tmp_path: Path) -> None:
    path = _fake(tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        verify_model(path)
    with pytest.raises(ModelError, match="sha256"):
        MiniLMEmbedder(model_path=path)


def test_missing_file_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        verify_model(tmp_path / "absent.onnx")
    with pytest.raises(ModelError, match="missing"):
        MiniLMEmbedder(model_path=tmp_path / "absent.onnx")


def test_matching_sha_passes_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake(tmp_path, b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    calls: list[Path] = []
    real = onnx._file_sha256

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(onnx, "_file_sha256", counting)
    assert verify_model(path, digest.upper()) == path.resolve()
    assert verify_model(path, digest) == path.resolve()
    assert len(calls) == 1  # hashed once per (path, size, mtime)
    path.write_bytes(b"abcd")  # size (and mtime) change: hashed again, and now it mismatches
    with pytest.raises(ModelError):
        verify_model(path, digest)
    assert len(calls) == 2


def test_a_file_that_is_not_a_model_raises_model_error(tmp_path: Path) -> None:
    content = b"garbage, but with the right checksum"
    path = _fake(tmp_path, content)
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        MiniLMEmbedder(model_path=path, sha256=hashlib.sha256(content).hexdigest())


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"threads": -1}, {"max_length": 4}, {"max_length": 1024},
     {"max_batch_tokens": 0}],
)  # fmt: skip
def test_bad_sizes_raise_config_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        MiniLMEmbedder(**kwargs)  # type: ignore[arg-type]


# --- batching helpers (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "max_tokens"), [(1, 10_000), (3, 10_000), (32, 12), (4, 7)])
def test_batches_cover_every_text_once_within_limits(batch_size: int, max_tokens: int) -> None:
    rng = np.random.default_rng(0)
    ids = [[1] * int(n) for n in rng.integers(1, 10, size=40)]
    batches = onnx._batches(ids, batch_size, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(ids)))
    lengths = [len(ids[i]) for i in flat]
    assert lengths == sorted(lengths)  # shortest first
    for b in batches:
        width = max(len(ids[i]) for i in b)
        assert len(b) <= batch_size
        assert len(b) == 1 or len(b) * width <= max_tokens


def test_pad_builds_ids_and_mask() -> None:
    ids, mask = onnx._pad([[101, 7, 102], [101, 102]])
    assert ids.tolist() == [[101, 7, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == np.int64 and mask.dtype == np.int64


def test_importing_embed_loads_no_runtime() -> None:
    code = (
        "import sys, engramdb.embed, engramdb.embed.onnx, engramdb.embed.http;"
        "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'httpx') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


# --- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.mark.model
def test_model_id_and_dim(minilm: MiniLMEmbedder) -> None:
    assert minilm.dim == 384
    assert minilm.model_id == f"all-MiniLM-L6-v2-int8-onnx@{MODEL_SHA256[:12]}"


@pytest.mark.model
def test_semantic_similarity(minilm: MiniLMEmbedder) -> None:
    food, bread, baby = minilm.embed_documents(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ]
    )
    related, unrelated = float(food @ bread), float(food @ baby)
    assert related > 0.6
    assert related > unrelated + 0.4
    query = minilm.embed_queries(["what is the man eating?"])[0]
    assert float(query @ food) > float(query @ baby)


@pytest.mark.model
def test_reads_up_to_256_tokens_not_128(minilm: MiniLMEmbedder) -> None:
    # The shipped tokenizer.json truncates at 128; the embedder must read 256 word pieces.
    head = "alpha " * 150  # ~150 tokens, past 128
    differ_after_150 = minilm.embed_documents([head + "cats purr loudly", head + "rockets fly far"])
    assert float(differ_after_150[0] @ differ_after_150[1]) < 0.99999
    head = "alpha " * 300  # past 256: whatever follows is cut off
    differ_after_300 = minilm.embed_documents([head + "cats purr loudly", head + "rockets fly far"])
    np.testing.assert_allclose(differ_after_300[0], differ_after_300[1], atol=1e-6)


@pytest.mark.model
def test_max_length_is_part_of_model_id() -> None:
    short = MiniLMEmbedder(max_length=32)
    assert short.model_id.endswith("/max32")


@pytest.mark.model
def test_from_config_uses_batch_size_and_threads() -> None:
    emb = MiniLMEmbedder.from_config(EmbedConfig(batch_size=5, threads=1))
    assert emb.batch_size == 5
    assert emb.embed_documents(["one", "two"]).shape == (2, 384)


@pytest.mark.model
@pytest.mark.parametrize(("spin", "entry"), [(False, "0"), (True, "1")])
def test_idle_threads_spin_only_when_asked(spin: bool, entry: str) -> None:
    emb = MiniLMEmbedder.from_config(EmbedConfig(spin=spin))
    options = emb._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
    assert EmbedConfig().spin is False
