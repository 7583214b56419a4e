-- The embedding cache as a rowid table with a unique (model, hash) index. A WITHOUT ROWID row
-- of a 384-d float32 vector (~1.6 KB) is past the local payload limit of an index page and
-- spills into an overflow page of its own: 4.7 KB on disk per vector. A rowid table keeps
-- two such rows on a 4 KB page: 2.2 KB per vector, and reads and writes touch fewer pages.
CREATE TABLE embeddings_rowid (
    model  TEXT    NOT NULL,
    hash   TEXT    NOT NULL,
    dim    INTEGER NOT NULL,
    vector BLOB    NOT NULL,               -- float32, little-endian
    UNIQUE (model, hash)
);
INSERT INTO embeddings_rowid (model, hash, dim, vector)
    SELECT model, hash, dim, vector FROM embeddings ORDER BY model, hash;
DROP TABLE embeddings;
ALTER TABLE embeddings_rowid RENAME TO embeddings;
