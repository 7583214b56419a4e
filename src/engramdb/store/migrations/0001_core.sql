-- engramdb core schema. Times are UTC epoch seconds (REAL).
CREATE TABLE store_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE memories (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    hash        TEXT    NOT NULL,           -- sha256 of the normalized text
    source      TEXT,                       -- path or URI it was first seen in
    document    TEXT,                       -- document it belongs to
    ordinal     INTEGER,                    -- position in the document (chunk or turn index)
    char_start  INTEGER,
    char_end    INTEGER,
    event_time  REAL,                       -- when it happened (input time or file mtime)
    ingest_time REAL    NOT NULL,
    meta        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    count       INTEGER NOT NULL DEFAULT 1, -- sightings: origin + exact/near duplicates
    UNIQUE (namespace, hash)
);
CREATE INDEX memories_source ON memories (source);
CREATE INDEX memories_document ON memories (namespace, document, ordinal);
CREATE INDEX memories_event_time ON memories (event_time);

-- Every place a memory was seen. (memory, source, document, ordinal, span) is unique,
-- so re-ingesting the same input adds nothing.
CREATE TABLE sightings (
    id          INTEGER PRIMARY KEY,
    memory_id   INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    source      TEXT,
    document    TEXT,
    ordinal     INTEGER,
    char_start  INTEGER,
    char_end    INTEGER,
    event_time  REAL,
    seen_time   REAL    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('origin', 'exact', 'near')),
    score       REAL    NOT NULL,
    text_hash   TEXT    NOT NULL,           -- hash of the text as seen (differs for near)
    UNIQUE (memory_id, source, document, ordinal, char_start, text_hash)
);
CREATE INDEX sightings_source ON sightings (source);
CREATE INDEX sightings_memory ON sightings (memory_id);

-- MinHash LSH band keys for near-duplicate candidates (derived data).
CREATE TABLE minhash_bands (
    memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    band      INTEGER NOT NULL,
    key       BLOB    NOT NULL,
    PRIMARY KEY (band, key, memory_id)
) WITHOUT ROWID;
CREATE INDEX minhash_bands_memory ON minhash_bands (memory_id);

CREATE TABLE minhash_signatures (
    memory_id INTEGER PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    signature BLOB NOT NULL
);

-- Embedding cache keyed by (model, content hash): never embed the same text twice.
CREATE TABLE embeddings (
    model  TEXT    NOT NULL,
    hash   TEXT    NOT NULL,
    dim    INTEGER NOT NULL,
    vector BLOB    NOT NULL,               -- float32, little-endian
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
