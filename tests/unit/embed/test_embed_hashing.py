"""HashEmbedder: deterministic feature hashing for tests."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from engramdb.embed import HashEmbedder
from engramdb.errors import ConfigError


def _oracle(text: str, dim: int) -> np.ndarray:
    """The documented scheme, written out independently: blake2b-8 buckets and signs of
    lowercased words (weight 1) and of padded character trigrams (weight 0.5)."""
    vec = np.zeros(dim)
    for word in "".join(c if c.isalnum() or c == "_" else " " for c in text.lower()).split():
        feats = [("w:" + word, 1.0)]
        padded = f"<{word}>"
        feats += [("c:" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2)]
        for feat, weight in feats:
            value = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
            vec[(value >> 1) % dim] += weight if value & 1 else -weight
    return vec / np.linalg.norm(vec)


@pytest.mark.parametrize("text", ["Hello world", "The deploy freeze moved to Friday!", "a b c"])
def test_matches_the_documented_scheme(text: str) -> None:
    got = HashEmbedder(dim=64).embed_documents([text])[0]
    np.testing.assert_allclose(got, _oracle(text, 64), atol=1e-6)


def test_stable_across_instances_and_processes() -> None:
    # blake2b, not Python's salted hash(): a fixed text has a fixed vector everywhere.
    a = HashEmbedder(dim=32).embed_documents(["stable vector"])
    b = HashEmbedder(dim=32).embed_documents(["stable vector"])
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a[0], _oracle("stable vector", 32), atol=1e-6)


def test_case_insensitive_and_overlap_scores_higher() -> None:
    emb = HashEmbedder(dim=256)
    q, same, near, far = emb.embed_documents(
        ["deploy freeze friday", "DEPLOY Freeze Friday", "the deploy freeze", "banana smoothie"]
    )
    assert float(q @ same) == pytest.approx(1.0, abs=1e-6)
    assert float(q @ near) > float(q @ far) + 0.2


def test_texts_without_words_share_a_fixed_unit_vector() -> None:
    emb = HashEmbedder(dim=16)
    out = emb.embed_documents(["", "   ", "!!! ..."])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    assert np.count_nonzero(out[0]) == 1


def test_model_id_names_dim_and_ngram() -> None:
    assert "d64" in HashEmbedder().model_id
    assert HashEmbedder(dim=8).model_id != HashEmbedder(dim=16).model_id
    assert HashEmbedder(dim=8, ngram=4).model_id != HashEmbedder(dim=8).model_id
    assert HashEmbedder().dim == 64


@pytest.mark.parametrize(("dim", "ngram"), [(1, 3), (0, 3), (8, 0)])
def test_rejects_bad_sizes(dim: int, ngram: int) -> None:
    with pytest.raises(ConfigError):
        HashEmbedder(dim=dim, ngram=ngram)


def test_queries_equal_documents() -> None:
    emb = HashEmbedder()
    texts = ["one", "two words"]
    assert np.array_equal(emb.embed_queries(texts), emb.embed_documents(texts))
