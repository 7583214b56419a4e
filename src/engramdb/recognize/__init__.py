"""Recognition: exact and near-duplicate detection at write time and in ``Memory.recognize``."""

from engramdb.recognize.near import (
    NearCandidate,
    NearMatch,
    NearScan,
    best_near,
    scan_near,
    values_differ,
)

__all__ = ["NearCandidate", "NearMatch", "NearScan", "best_near", "scan_near", "values_differ"]
