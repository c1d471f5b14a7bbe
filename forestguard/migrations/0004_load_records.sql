-- 0004: a load record per ingested file, written in the ingest's own transaction.
--
-- sha256 is of the file's content, so the same file loaded again is recognised whatever its
-- name; data_version is the version the load committed (the 0002 trigger's, read inside the
-- same transaction). file and sha256 are NULL for writes that came from no file.
CREATE TABLE IF NOT EXISTS forestguard_loads (
    id BIGSERIAL PRIMARY KEY,
    file TEXT,
    sha256 TEXT,
    rows BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    data_version BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS forestguard_loads_sha256 ON forestguard_loads (sha256);
