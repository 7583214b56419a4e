"""SpannConfig: the knobs of the SPANN index, with measured defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from engramdb.errors import ConfigError

__all__ = ["SpannConfig"]

HeadIndexKind = Literal["auto", "exact", "hnsw"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpannConfig:
    """Build, search and update settings of :class:`SpannIndex`.

    Distances are squared L2 on the stored vectors (cosine order for unit vectors).

    Attributes:
        posting_size: target vectors per list at build (before replicas): the index gets
            ``ceil(n / posting_size)`` heads (mean centroids from flat k-means).
        posting_limit: a list holding more rows than this is split in two by 2-means
            (SPFresh); ``0`` means ``3 * posting_size``.
        merge_threshold: a list with fewer live vectors than this is merged away.
        replicas: lists per vector: exactly this many with SOAR, at most with the closure rule.
        soar: λ of SOAR spilling (see :mod:`._assign`): replicas beyond the nearest list are
            chosen so their residuals are orthogonal to the lists already joined; ``0`` uses
            SPANN's closure and RNG rules (``closure_eps``, ``rng_factor``) instead.
        closure_eps: ε1 of the closure rule: a vector joins list ``j`` only if
            ``d²(x, c_j) <= (1 + ε1) · d²(x, c_1)``.
        rng_factor: SPANN's RNG rule on squared distances: skip ``c_j`` when an accepted
            ``c_a`` has ``rng_factor · d²(c_j, c_a) < d²(x, c_j)``.
        candidates: nearest heads considered per vector when assigning replicas.
        kmeans_iters: Lloyd iterations of the head clustering.
        kmeans_sample: training rows per head (the sample is ``kmeans_sample · heads``).
        balance: k-means balance penalty: an average-size cluster pays ``balance`` times the
            mean squared distance (0 disables it).
        max_probes: K, the most lists one query scans.
        prune_eps: ε2, query-aware pruning: probe list ``i`` only if
            ``d²(q, c_i) <= (1 + ε2) · d²(q, c_1)``; ``"auto"`` calibrates it at build time on
            held-out vectors to reach ``target_recall`` (stored in the manifest); ``None``
            turns pruning off (always ``max_probes`` lists).
        target_recall: recall@10 the calibration aims for; if ``max_probes`` lists cannot
            reach it, the calibration raises the cap up to 4× ``max_probes``.
        calibration_margin: added to ``target_recall`` during calibration (its queries come
            from the data, so they are a little easier than fresh ones).
        calibration_queries: held-out vectors used for the calibration.
        head_index: ``"exact"`` (numpy scan of all heads), ``"hnsw"`` (hnswlib graph, the
            ``ann`` extra) or ``"auto"`` (hnsw above ``hnsw_min_heads`` heads if hnswlib is
            installed, else exact).
        hnsw_min_heads: the head count from which ``"auto"`` uses the graph.
        hnsw_m: graph degree M of the head graph.
        hnsw_ef_construction: efConstruction of the head graph.
        hnsw_ef: ef at search time (raised to at least ``max_probes``).
        quantized: scan the lists' int8 codes and re-score a short list with the float32
            rows (``False``: scan the float32 rows; also the case for a folder without codes
            or without simsimd).
        rescore: with ``quantized``, rows re-scored per query beyond ``k`` and the spare
            candidates kept for replicas and stale entries.
        prefilter: with ``quantized``, a single query reads the int8 codes of only this
            fraction of its candidate rows, the nearest by Hamming distance of their sign
            bits (``0``: the codes of every candidate); ``"auto"`` calibrates it at build time
            (see :mod:`._calibrate`; ``0`` where ε2 is not calibrated).
        reassign_lists: after a split, vectors in this many lists nearest the old head are
            checked for a better list (SPFresh's ReassignK).
        slack: spare capacity per list, as a fraction of its rows, for in-place appends.
        seed: random seed of the clustering and calibration.
    """

    posting_size: int = 128
    posting_limit: int = 0
    merge_threshold: int = 8
    replicas: int = 3
    soar: float = 1.0
    closure_eps: float = 0.05
    rng_factor: float = 8.0
    candidates: int = 16
    kmeans_iters: int = 4
    kmeans_sample: int = 32
    balance: float = 0.0
    max_probes: int = 64
    prune_eps: float | None | Literal["auto"] = "auto"
    target_recall: float = 0.95
    calibration_margin: float = 0.01
    calibration_queries: int = 256
    head_index: HeadIndexKind = "auto"
    hnsw_min_heads: int = 4096
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef: int = 128
    quantized: bool = True
    rescore: int = 32
    prefilter: float | Literal["auto"] = "auto"
    reassign_lists: int = 8
    slack: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("posting_size", "replicas", "candidates", "max_probes", "hnsw_m")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"SpannConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.posting_limit and self.posting_limit < 2 * self.merge_threshold:
            raise ConfigError(
                f"SpannConfig.posting_limit ({self.posting_limit}) must be at least twice "
                f"merge_threshold ({self.merge_threshold})"
            )
        if self.rescore < 0 or self.soar < 0:
            raise ConfigError(
                f"SpannConfig.rescore and soar must be >= 0, got {self.rescore} and {self.soar}"
            )
        pre = self.prefilter
        if pre != "auto" and (isinstance(pre, str) or not 0.0 <= pre <= 1.0):
            raise ConfigError(f"SpannConfig.prefilter must be in [0, 1] or 'auto', got {pre!r}")
        if self.closure_eps < 0 or self.rng_factor <= 0 or self.slack < 0:
            raise ConfigError("SpannConfig.closure_eps and slack must be >= 0, rng_factor > 0")
        eps = self.prune_eps
        if eps != "auto" and eps is not None and (isinstance(eps, str) or eps < 0):
            raise ConfigError(f"SpannConfig.prune_eps must be >= 0, got {self.prune_eps}")
        if not 0.0 < self.target_recall <= 1.0:
            raise ConfigError(
                f"SpannConfig.target_recall must be in (0, 1], got {self.target_recall}"
            )
        if self.head_index not in ("auto", "exact", "hnsw"):
            raise ConfigError(
                f"SpannConfig.head_index must be 'auto', 'exact' or 'hnsw', got {self.head_index!r}"
            )

    @property
    def limit(self) -> int:
        """The effective split threshold."""
        return self.posting_limit or 3 * self.posting_size

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpannConfig:
        """Settings from :meth:`to_dict`; unknown keys are ignored (newer manifests)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})
