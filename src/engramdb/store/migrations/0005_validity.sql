-- Facts that change: a memory is valid from its event time (else its ingest time) until
-- another supersedes it. Superseding never deletes: the old memory stays, with valid_to set,
-- and the link is kept (with when it was undone, if it was).
ALTER TABLE memories ADD COLUMN valid_to REAL;            -- NULL: still valid
CREATE INDEX memories_valid_to ON memories (valid_to) WHERE valid_to IS NOT NULL;

CREATE TABLE supersessions (
    id       INTEGER PRIMARY KEY,
    old_id   INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    new_id   INTEGER REFERENCES memories (id) ON DELETE SET NULL,  -- NULL: it was forgotten
    kind     TEXT    NOT NULL CHECK (kind IN ('supersede', 'conflict')),
    origin   TEXT    NOT NULL CHECK (origin IN ('manual', 'auto', 'judge')),
    at       REAL    NOT NULL,          -- valid time: when the old memory stopped being valid
    recorded REAL    NOT NULL,          -- when the link was made
    undone   REAL,                      -- when it was undone or resolved; NULL while it holds
    detail   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
);
CREATE INDEX supersessions_old ON supersessions (old_id);
CREATE INDEX supersessions_new ON supersessions (new_id);

-- Keys of "subject and relation with the value left out" (engramdb.recognize.facts): two
-- memories of a namespace that share one may state two values of the same fact.
CREATE TABLE fact_keys (
    namespace TEXT    NOT NULL,
    key       BLOB    NOT NULL,
    memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    PRIMARY KEY (namespace, key, memory_id)
) WITHOUT ROWID;
CREATE INDEX fact_keys_memory ON fact_keys (memory_id);

-- Pairs an LLM judge found unrelated (engramdb.engine._proposals): not asked about again.
CREATE TABLE judged_pairs (
    old_id  INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    new_id  INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    judged  REAL    NOT NULL,
    PRIMARY KEY (old_id, new_id)
) WITHOUT ROWID;
CREATE INDEX judged_pairs_new ON judged_pairs (new_id);
