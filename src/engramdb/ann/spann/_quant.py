"""Int8 codes and sign bits of posting rows, and the compiled kernels that scan them.

Each posting row has a code row of ``dim + 4`` bytes next to it (same row number, in
``codes.e<E>.i8``): the row scaled by ``127 / max|x|`` and rounded to int8, then that row's
scale ``max|x| / 127`` as a float32. A query is coded the same way, so that
``scale_row · (q8 · c)`` is ``q · x`` up to a positive per-query factor and a rounding error
of about 0.1% of ``|q||x|``: enough to pick a short list of candidates, which search then
re-scores with the float32 rows. A scan reads a quarter of the bytes of a float32 scan.

A per-row scale needs no training and never clips, so rows appended later (any vector the
index accepts) code as well as the build's.

Sign bits (``signs.e<E>.b1``): each row's ``x > centre`` packed into ``ceil(dim / 8)`` bytes,
1/32 of the float32 row. Their Hamming distance to the query's bits ranks rows roughly by
angle around the centre (the data's mean), a coarse first pass that picks the rows whose
int8 codes are read; how much it loses depends on the data, so the index calibrates it.

The dot products run in `simsimd <https://github.com/ashvardanian/SimSIMD>`_ (int8 SIMD
kernels, VNNI where the CPU has it). Without it, :func:`kernel` is ``None`` and search
scans the float32 rows instead.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.types import Matrix

__all__ = [
    "SCALE_BYTES",
    "code_width",
    "decode",
    "dot_blocks",
    "dot_rows",
    "encode",
    "encode_queries",
    "kernel",
    "scaled",
    "sign_width",
    "signs",
]

SCALE_BYTES = 4
"""Bytes of a code row's float32 scale."""

_Bytes = npt.NDArray[np.uint8]
_Codes = npt.NDArray[np.int8]


def code_width(dim: int) -> int:
    """Bytes of one code row."""
    return dim + SCALE_BYTES


def scaled(x: Matrix) -> tuple[_Codes, Matrix]:
    """Rows coded as int8 and their scales: ``x ≈ codes · scales[:, None]``."""
    top = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0], dtype=np.float32)
    scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    codes = np.rint(x / scale[:, None]).astype(np.int8)
    return codes, scale


def encode(vectors: Matrix) -> _Bytes:
    """The code rows of ``vectors``, shape ``(n, dim + 4)`` uint8."""
    x = np.asarray(vectors, dtype=np.float32)
    codes, scale = scaled(x)
    out = np.empty((x.shape[0], code_width(x.shape[1])), dtype=np.uint8)
    out[:, : x.shape[1]] = codes.view(np.uint8)
    out[:, x.shape[1] :] = scale[:, None].view(np.uint8)
    return out


def sign_width(dim: int) -> int:
    """Bytes of one row's sign bits."""
    return -(-dim // 8)


def signs(vectors: Matrix, centre: Matrix) -> _Bytes:
    """The sign bits of ``vectors - centre`` (``> 0``), packed: ``(n, ceil(dim / 8))`` uint8."""
    out: _Bytes = np.packbits(np.asarray(vectors) > centre, axis=1)
    return out


def decode(rows: _Bytes, dim: int) -> tuple[_Codes, Matrix]:
    """Views of code rows: the int8 codes ``(n, dim)`` and the scales ``(n,)``."""
    codes = rows[:, :dim].view(np.int8)
    scales = rows[:, dim:].view(np.float32)[:, 0]
    return codes, scales


def encode_queries(queries: Matrix) -> _Codes:
    """Queries coded for :func:`kernel` (their own scales are dropped: they rank nothing)."""
    codes, _ = scaled(np.asarray(queries, dtype=np.float32))
    return np.ascontiguousarray(codes)


@functools.cache
def kernel() -> ModuleType | None:
    """The simsimd module, or ``None`` when it is not installed (search then scans float32)."""
    try:
        import simsimd
    except ImportError:  # pragma: no cover - simsimd is a core dependency
        return None
    return simsimd


# Results are copied out rather than written through simsimd's ``out=``: simsimd 6.5 returns
# None from that path without a reference, which crashes the interpreter after many calls.


def dot_rows(q8: _Codes, codes: _Codes) -> Any:
    """``codes @ q8``, shape ``(rows,)``, by simsimd's int8 kernel: a buffer of float64 to
    copy from (``scores[a:b] = dot_rows(...)``); hot loops call ``kernel().dot`` the same
    way."""
    return _simsimd().dot(q8, codes)


def dot_blocks(q8: _Codes, codes: _Codes) -> Matrix:
    """``q8 @ codes.T`` as float32, shape ``(m, rows)``, by simsimd's int8 kernel."""
    out: Matrix = np.asarray(_simsimd().cdist(q8, codes, "dot", out_dtype="float32"))
    return out


def _simsimd() -> Any:
    module = kernel()
    assert module is not None
    return module
