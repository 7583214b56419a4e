"""SPANN's int8 codes: coding, the compiled kernel, the codes file next to the posting rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engramdb.ann.spann import SpannConfig, SpannIndex
from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._postings import PostingFile, pack, posting_names
from engramdb.ann.spann._quant import (
    code_width,
    decode,
    dot_blocks,
    dot_rows,
    encode,
    encode_queries,
    kernel,
    sign_width,
)
from engramdb.errors import ConfigError, IndexFormatError


def unit(rng: np.random.Generator, n: int, d: int = 24) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_codes_round_trip_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = unit(rng, 200) * rng.uniform(0.1, 10.0, size=(200, 1)).astype(np.float32)
    x[5] = 0.0
    rows = encode(x)
    assert rows.shape == (200, code_width(24)) and rows.dtype == np.uint8
    codes, scales = decode(rows, 24)
    np.testing.assert_allclose(scales, np.where(x[:, 0] == 0, 1.0, np.abs(x).max(1) / 127))
    back = codes.astype(np.float32) * scales[:, None]
    assert np.all(np.abs(back - x) <= 0.5 * scales[:, None] + 1e-7)
    assert np.abs(codes).max() == 127  # the largest component uses the full range
    assert not codes[5].any()


def test_kernel_matches_integer_dot_products() -> None:
    assert kernel() is not None  # simsimd is a core dependency
    rng = np.random.default_rng(1)
    rows = encode(unit(rng, 50, 384))
    codes, _ = decode(rows, 384)  # strided: each code row sits in a 388-byte row
    q8 = encode_queries(unit(rng, 3, 384))
    want = q8.astype(np.int64) @ codes.astype(np.int64).T
    one = np.empty(50, dtype=np.float32)
    one[:] = dot_rows(q8[0], codes)
    np.testing.assert_array_equal(one, want[0])
    np.testing.assert_array_equal(dot_blocks(q8, codes), want)
    extreme = np.full(384, -128, dtype=np.int8)
    one[:2] = dot_rows(extreme, np.full((2, 384), -128, dtype=np.int8))
    assert one[:2].tolist() == [128 * 128 * 384] * 2


def test_posting_file_writes_codes_of_its_rows(tmp_path: Path) -> None:
    dim = 16
    post = PostingFile(tmp_path, dim, 0, create=True)
    start = post.alloc(10)
    vecs = unit(np.random.default_rng(2), 10, dim)
    post.write(start, vecs, pack(np.arange(10), np.zeros(10, dtype=np.uint8)))
    assert post.has_codes and post.codes is not None and post.scales is not None
    codes, scales = decode(encode(vecs), dim)
    np.testing.assert_array_equal(post.codes[start : start + 10], codes)
    np.testing.assert_array_equal(post.scales[start : start + 10], scales)
    assert post.has_signs and post.signs is not None and post.centre is not None
    np.testing.assert_allclose(post.centre, vecs.mean(axis=0))  # none given: the first rows'
    want = np.packbits(vecs > vecs.mean(axis=0), axis=1)
    np.testing.assert_array_equal(post.signs[start : start + 10], want)
    end = post.end
    post.trim()
    post.close()
    codes_file, signs_file = (tmp_path / name for name in posting_names(0)[2:])
    assert codes_file.stat().st_size == end * code_width(dim)
    assert signs_file.stat().st_size == 4 * dim + end * sign_width(dim) == 64 + end * 2
    again = PostingFile(tmp_path, dim, end)
    assert again.signs is not None and again.centre is not None
    np.testing.assert_array_equal(again.signs[start : start + 10], want)
    np.testing.assert_allclose(again.centre, vecs.mean(axis=0))
    again.close()
    codes_file.write_bytes(codes_file.read_bytes()[: code_width(dim)])
    with pytest.raises(IndexFormatError, match="torn"):
        PostingFile(tmp_path, dim, end)
    codes_file.unlink()  # a folder from before the codes: opens without them
    signs_file.unlink()
    old = PostingFile(tmp_path, dim, end)
    assert not old.has_codes and old.codes is None and old.signs is None
    np.testing.assert_array_equal(old.vectors[start : start + 10], vecs)
    old.close()


def test_an_index_without_codes_searches_its_float32_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base, queries = unit(rng, 600), unit(rng, 20)
    cfg = SpannConfig(posting_size=16, merge_threshold=2, head_index="exact")
    path = tmp_path / "idx"
    SpannIndex.build(np.arange(600), base, cfg, path=path).close()
    with SpannIndex.open(path) as index:
        want = index.search(queries, 10, max_probes=8, prune_eps=None)
    for side in [*path.glob("codes.e*"), *path.glob("signs.e*")]:
        side.unlink()
    with SpannIndex.open(path) as index:
        got = index.search(queries, 10, max_probes=8, prune_eps=None)
        index.add(np.arange(1000, 1010), unit(rng, 10))  # appends without codes
        assert index.search(base[:1], 1)[0][0, 0] == 0
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_config_rejects_negative_rescore_and_a_prefilter_outside_0_1() -> None:
    with pytest.raises(ConfigError, match="rescore"):
        SpannConfig(rescore=-1)
    with pytest.raises(ConfigError, match="prefilter"):
        SpannConfig(prefilter=1.5)
    assert dataclasses.replace(SpannConfig(), quantized=False).quantized is False


def test_coarse_head_search_matches_exact_search_through_changes() -> None:
    rng = np.random.default_rng(4)
    heads = HeadIndex(unit(rng, 400, 64))
    heads.kill(3)
    heads.replace(7, unit(rng, 1, 64)[0])
    heads.add(unit(rng, 300, 64))  # grows the arrays (codes too)
    queries = unit(rng, 100, 64)
    for q in queries:
        want_i, want_d = heads.search(q[None, :], 16)
        got_i, got_d = heads.search(q[None, :], 16, coarse=True)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, atol=1e-5)
    assert 3 not in heads.search(heads.vectors[3:4].copy(), 16, coarse=True)[0]
