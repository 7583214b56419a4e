-- The change log: every memory added or deleted, in commit order. Derived indexes (dense
-- vectors in RAM, SPANN) record the last seq they reflect and catch up by reading the rows
-- after it; AUTOINCREMENT keeps seq increasing even after old rows are pruned.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id INTEGER NOT NULL,
    op        INTEGER NOT NULL CHECK (op IN (0, 1))   -- 1 added, 0 deleted
);

CREATE TRIGGER memories_changes_ai AFTER INSERT ON memories BEGIN
    INSERT INTO changes (memory_id, op) VALUES (new.id, 1);
END;

CREATE TRIGGER memories_changes_ad AFTER DELETE ON memories BEGIN
    INSERT INTO changes (memory_id, op) VALUES (old.id, 0);
END;
