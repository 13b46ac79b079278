-- Which blob each record was first stored from (issue #5: the record page lists the other
-- records of the same blob). Set once by the INSERT that stores the record; a duplicate seen
-- later in another blob does not change it. NULL for imported records (they have no blob)
-- and for records stored before this migration.
ALTER TABLE records ADD COLUMN blob_id INTEGER REFERENCES blobs(id);

-- "Same blob" reads only this index. Blob ids grow as blobs are listed, so inserts land
-- near the right edge of the B-tree (cheap, unlike user_id / client_ip); imported records
-- (NULL) are left out of it.
CREATE INDEX records_blob ON records (blob_id) WHERE blob_id IS NOT NULL;
