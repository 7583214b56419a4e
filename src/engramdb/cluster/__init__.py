"""engramdb on a cluster: shards that rank exactly as one store would.

A :class:`Cluster` is a coordinator (any process that opens it) over shards, each an
engramdb store on its node's disk served by a Ray actor (restarted in place when it dies),
and a small catalog store (``ROOT/catalog.db``): the shards, which shard owns which of the
1,024 routing slots, namespaces pinned to a shard, the next memory id, the routing version
and a journal of writes not yet applied.

- **Routing.** A memory's slot is a hash of its namespace and content hash, so exact
  duplicates always meet on one shard. Near duplicates cannot be routed together (their
  content differs), so recognition asks every shard, once per batch, for the memories
  sharing the batch's MinHash band keys, and a near copy merges into its twin on the twin's
  shard. Memory ids come from the catalog, in the order one store would give them.
- **Recall** is a scatter–gather: the shards' lexical statistics are summed first, then
  every shard scores its own memories with them (BM25 equal to one store's), the query
  vectors are embedded once, and fusion, conversation re-ranking, calibration and
  reranking run once over the union of the shards' candidates.
- **Faults.** Every shard call is idempotent; writes are journaled in the catalog before
  they are sent, so a shard that dies mid-write applies its part after its restart, once.
"""

from engramdb.cluster.core import Cluster, ClusterStats

__all__ = ["Cluster", "ClusterStats"]
