-- The UI rollups of 0002 are now kept by the store's writer instead of per-row triggers:
-- it adds up the records and hits of one blob (or import batch) in memory and applies one
-- UPSERT per touched key, in the same savepoint as the rows (invariant 1 holds for them
-- as before: rows and rollups commit or roll back together). The triggers ran two UPSERTs
-- per record and two per hit on the single writer thread, the serial path of a backfill.
-- The tables, their keys and their meaning are unchanged; a store migrated here keeps the
-- rollups the triggers built. Rows of `records` and `hits` are still never deleted; a
-- change that deletes them must subtract from the rollups in the same transaction.
DROP TRIGGER agg_records_insert;
DROP TRIGGER agg_hits_insert;
