-- Memory ids are never handed out twice. SQLite gives a new row the largest id + 1, so the id
-- of the latest memory came back after it was forgotten, and a client that kept it could
-- later address another memory. The largest id ever used is kept here (a trigger raises it on
-- every insert) and new memories take the next one.
INSERT OR IGNORE INTO store_info (key, value)
VALUES ('last_memory_id', COALESCE((SELECT MAX(id) FROM memories), 0));

CREATE TRIGGER memories_last_id AFTER INSERT ON memories
WHEN new.id > (SELECT CAST(value AS INTEGER) FROM store_info WHERE key = 'last_memory_id')
BEGIN
    UPDATE store_info SET value = new.id WHERE key = 'last_memory_id';
END;
