-- 0003: the data version never goes backwards across a replica's promotion.
--
-- Replication to a read replica (another region) is asynchronous: writes the old primary
-- committed after the last one the replica replayed are lost when the replica is promoted,
-- and the versions they took (v+1, v+2, ...) would be taken again by the new primary's
-- writes, for other data, under the same cache keys. So the first write on a new WAL
-- timeline (a promotion starts one) moves the version past the clock in milliseconds,
-- as `db restore` does; later writes add one as before. The timeline of the last bump is
-- kept beside the version.
INSERT INTO forestguard_meta (key, value)
VALUES ('data_timeline', ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint)
ON CONFLICT (key) DO NOTHING;

CREATE OR REPLACE FUNCTION forestguard_bump_data_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    timeline BIGINT := ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint;
BEGIN
    UPDATE forestguard_meta SET value = value + 1 WHERE key = 'data_version';  -- queues concurrent writers
    IF (SELECT value FROM forestguard_meta WHERE key = 'data_timeline') IS DISTINCT FROM timeline THEN
        UPDATE forestguard_meta SET value = GREATEST(value, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
        WHERE key = 'data_version';
        INSERT INTO forestguard_meta (key, value) VALUES ('data_timeline', timeline)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    END IF;
    RETURN NULL;
END
$$;
