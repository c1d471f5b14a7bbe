-- 0002: ForestGuard's bookkeeping, beside the zone table and never altering its columns.
--
-- Cache keys carry a data version that every write must bump, or an ingest would hide behind
-- an old cache entry. A statement-level trigger bumps it in the writer's own transaction, so the
-- rule holds for every writer (forestguard ingest, psql, a legacy loader, TRUNCATE), a rolled-back
-- write bumps nothing, and concurrent writers queue only on this one row, after their COPY.
CREATE TABLE IF NOT EXISTS forestguard_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
-- schema_version is forestguard.schema.SCHEMA_VERSION (a test holds the two equal).
INSERT INTO forestguard_meta (key, value) VALUES ('data_version', 0), ('schema_version', 1)
ON CONFLICT (key) DO NOTHING;

CREATE OR REPLACE FUNCTION forestguard_bump_data_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE forestguard_meta SET value = value + 1 WHERE key = 'data_version';
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER forestguard_data_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON deforestation_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_bump_data_version();
