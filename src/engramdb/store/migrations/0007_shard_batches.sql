-- A shard of a cluster (engramdb.cluster) applies each routed batch once: the batch id and
-- what applying it returned, so a batch sent again after a restart changes nothing.
CREATE TABLE IF NOT EXISTS shard_batches (
    batch TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    applied REAL NOT NULL
);
