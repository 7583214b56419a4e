-- Fact keys (0005) are made at write time. A store that held memories before them gets its
-- keys filled once, when it is next opened for writing (engramdb.engine._validity); a store
-- that is empty here needs nothing, and is marked filled now.
INSERT INTO store_info (key, value)
SELECT 'fact_keys_filled', '1' WHERE NOT EXISTS (SELECT 1 FROM memories);
