-- The service's own tables: API keys (stored hashed) and durable ingest jobs. Writing them
-- does not bump data_version: they change no memory and no index.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    prefix     TEXT    NOT NULL,               -- the key's first characters, to tell keys apart
    hash       TEXT    NOT NULL UNIQUE,        -- sha256 of the whole key
    namespaces TEXT    NOT NULL CHECK (json_valid(namespaces)),   -- JSON list, in order
    read_only  INTEGER NOT NULL CHECK (read_only IN (0, 1)),
    created    REAL    NOT NULL,
    revoked    REAL                            -- NULL while the key is valid
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked IS NULL;

-- A bulk ingest: its files are spooled to disk before the job is acknowledged; the runner
-- records progress after each committed batch, so a restart resumes where it stopped.
CREATE TABLE jobs (
    id         TEXT    PRIMARY KEY,
    namespace  TEXT    NOT NULL,
    key_name   TEXT,                           -- who submitted it (NULL: no keys in use)
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    created    REAL    NOT NULL,
    started    REAL,
    finished   REAL,
    spool      TEXT    NOT NULL,               -- folder holding the uploaded files
    attempts   INTEGER NOT NULL DEFAULT 0,     -- times a runner started it (> 1: resumed)
    owner      TEXT,                           -- the runner working on it: host:pid:token
    heartbeat  REAL,                           -- the owner's last sign of life
    error      TEXT
);
CREATE INDEX jobs_state ON jobs (state, created);

CREATE TABLE job_files (
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL,               -- the file name the client sent
    stored     TEXT    NOT NULL,               -- its spooled copy, relative to the job's spool
    bytes      INTEGER NOT NULL,
    records    INTEGER,                        -- records loaded from it (NULL: not loaded yet)
    done       INTEGER NOT NULL DEFAULT 0,     -- records committed so far
    added      INTEGER NOT NULL DEFAULT 0,
    merged     INTEGER NOT NULL DEFAULT 0,     -- exact or near duplicates merged
    skipped    INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    PRIMARY KEY (job_id, position)
);
