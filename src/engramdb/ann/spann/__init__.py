"""SPANN: a memory–disk vector index (heads in RAM, posting lists on disk), updated in place.

After SPANN (NeurIPS'21) and SPFresh (SOSP'23); see ``PAPERS.md`` §0 and the local findings in
``DESIGN.md``. In RAM: the list centroids ("heads") with an exact numpy or hnswlib search over
them, the list directory, and per vector its id, version and one file row (about 17 bytes per
vector plus 1.9 KB per head at d=384). On disk: page-aligned posting lists read through mmap,
each row with an int8 code and sign bits next to it.

* **build** — bisecting 2-means picks ``n / posting_size`` heads, a few Lloyd rounds refine
  them, every vector joins its nearest list and ``replicas - 1`` more chosen by SOAR (or by
  SPANN's closure test and RNG rule); lists over ``posting_limit`` are split (2-means), lists
  under ``merge_threshold`` merged; ε2, the probe cap and the sign-bit prefilter are
  calibrated on held-out vectors.
* **search** — nearest heads (by their int8 codes, ranked exactly), query-aware pruning,
  in-place scans of the lists' sign bits and int8 codes, then stale-entry and replica
  filtering and exact float32 scores for a short list; batches read each list once.
* **updates** — appends to the chosen lists, tombstones in a 1-byte version map, SPFresh
  split/reassign/merge; :meth:`SpannIndex.save` commits atomically (the manifest records
  ``store_version``); :meth:`SpannIndex.open` raises
  :class:`~engramdb.errors.IndexFormatError` on a torn or corrupt folder.
"""

from __future__ import annotations

from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._manifest import read_manifest
from engramdb.ann.spann.index import SpannIndex

__all__ = ["SpannConfig", "SpannIndex", "read_manifest"]
