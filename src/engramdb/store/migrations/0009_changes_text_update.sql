-- A memory whose text (or id) is changed in place is logged as deleted and added again, so
-- that indexes caught up from the change log (the lexical postings, the dense vectors) see
-- the new text too. engramdb itself never rewrites a memory's text; this covers any writer.
CREATE TRIGGER memories_changes_au AFTER UPDATE OF text, id ON memories BEGIN
    INSERT INTO changes (memory_id, op) VALUES (old.id, 0);
    INSERT INTO changes (memory_id, op) VALUES (new.id, 1);
END;
