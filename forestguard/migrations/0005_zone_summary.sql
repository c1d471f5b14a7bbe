-- 0005: the statistics summaries (forestguard/stores/summary.py), and who keeps them exact.
--
-- Statistics of millions of zones must answer within the design's database latency (< 100 ms):
-- a GROUP BY over every zone cannot. The summaries hold exact sums per combination of the columns
-- a statistic filters or groups by: forestguard_zone_summary per (country, year, classification,
-- source, verified), a few thousand rows however many zones, for every statistic without a
-- minimum confidence; forestguard_zone_summary_thresholds the same for the zones at or above
-- each confidence threshold in steps of 0.05 (what the dashboard's slider sets: one threshold's
-- rows answer); forestguard_zone_summary_confidence per confidence value too, for any other
-- minimum. Hectares and confidences are summed in hundredths (bigint: PostgreSQL sums them far
-- faster than numeric, and they stay exact).
--
-- ForestGuard's loads append their own sums (computed from the batches they COPY: a trigger with
-- a transition table would copy every loaded row once more, tripling a bulk load's time) and set
-- summary_version to the data version they commit. Updates, deletes and truncations by anyone
-- are summed by the triggers below. An insert by another writer bumps the data version but not
-- summary_version: statistics then read the zones (exact, slower) until the next ForestGuard load
-- rebuilds the summaries. Statistics use them only while summary_version = data_version.

CREATE TABLE IF NOT EXISTS forestguard_zone_summary (
    country VARCHAR(100) NOT NULL,
    year INTEGER NOT NULL,
    classification VARCHAR(20),
    source VARCHAR(100),
    verified BOOLEAN NOT NULL,
    zones BIGINT NOT NULL,
    area_cents BIGINT NOT NULL,
    confidence_cents BIGINT NOT NULL,
    confidence_n BIGINT NOT NULL,
    verified_zones BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_zone_summary ON forestguard_zone_summary (country, year);
DELETE FROM forestguard_zone_summary;
INSERT INTO forestguard_zone_summary
SELECT country, year, classification, source, coalesce(verified, false), count(*), (sum(zones.area_ha) * 100)::bigint, (coalesce(sum(zones.confidence), 0) * 100)::bigint, count(zones.confidence), count(*) FILTER (WHERE zones.verified)
    FROM deforestation_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false);

CREATE TABLE IF NOT EXISTS forestguard_zone_summary_confidence (
    country VARCHAR(100) NOT NULL,
    year INTEGER NOT NULL,
    classification VARCHAR(20),
    source VARCHAR(100),
    verified BOOLEAN NOT NULL,
    confidence DECIMAL(3,2),
    zones BIGINT NOT NULL,
    area_cents BIGINT NOT NULL,
    confidence_cents BIGINT NOT NULL,
    confidence_n BIGINT NOT NULL,
    verified_zones BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_zone_summary_confidence ON forestguard_zone_summary_confidence (country, year);
DELETE FROM forestguard_zone_summary_confidence;
INSERT INTO forestguard_zone_summary_confidence
SELECT country, year, classification, source, coalesce(verified, false), confidence, count(*), (sum(zones.area_ha) * 100)::bigint, (coalesce(sum(zones.confidence), 0) * 100)::bigint, count(zones.confidence), count(*) FILTER (WHERE zones.verified)
    FROM deforestation_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false), confidence;

CREATE TABLE IF NOT EXISTS forestguard_zone_summary_thresholds (
    country VARCHAR(100) NOT NULL,
    year INTEGER NOT NULL,
    classification VARCHAR(20),
    source VARCHAR(100),
    verified BOOLEAN NOT NULL,
    threshold SMALLINT NOT NULL,
    zones BIGINT NOT NULL,
    area_cents BIGINT NOT NULL,
    confidence_cents BIGINT NOT NULL,
    confidence_n BIGINT NOT NULL,
    verified_zones BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_zone_summary_thresholds ON forestguard_zone_summary_thresholds (threshold, country);
DELETE FROM forestguard_zone_summary_thresholds;
INSERT INTO forestguard_zone_summary_thresholds
SELECT country, year, classification, source, verified, t.threshold,
       sum(zones), sum(area_cents), sum(confidence_cents), sum(confidence_n), sum(verified_zones)
FROM forestguard_zone_summary_confidence AS s JOIN generate_series(0, 100, 5) AS t(threshold) ON s.confidence * 100 >= t.threshold
GROUP BY country, year, classification, source, verified, t.threshold;

INSERT INTO forestguard_meta (key, value)
SELECT 'summary_version', value FROM forestguard_meta WHERE key = 'data_version'
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

CREATE OR REPLACE FUNCTION forestguard_summary_updated() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO forestguard_zone_summary
    SELECT country, year, classification, source, coalesce(verified, false), -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false);
    INSERT INTO forestguard_zone_summary_confidence
    SELECT country, year, classification, source, coalesce(verified, false), confidence, -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false), confidence;
    INSERT INTO forestguard_zone_summary_thresholds
    SELECT country, year, classification, source, coalesce(verified, false), t.threshold, -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones JOIN generate_series(0, 100, 5) AS t(threshold) ON zones.confidence * 100 >= t.threshold
    GROUP BY country, year, classification, source, coalesce(verified, false), t.threshold;
    INSERT INTO forestguard_zone_summary
    SELECT country, year, classification, source, coalesce(verified, false), count(*), (sum(zones.area_ha) * 100)::bigint, (coalesce(sum(zones.confidence), 0) * 100)::bigint, count(zones.confidence), count(*) FILTER (WHERE zones.verified)
    FROM added_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false);
    INSERT INTO forestguard_zone_summary_confidence
    SELECT country, year, classification, source, coalesce(verified, false), confidence, count(*), (sum(zones.area_ha) * 100)::bigint, (coalesce(sum(zones.confidence), 0) * 100)::bigint, count(zones.confidence), count(*) FILTER (WHERE zones.verified)
    FROM added_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false), confidence;
    INSERT INTO forestguard_zone_summary_thresholds
    SELECT country, year, classification, source, coalesce(verified, false), t.threshold, count(*), (sum(zones.area_ha) * 100)::bigint, (coalesce(sum(zones.confidence), 0) * 100)::bigint, count(zones.confidence), count(*) FILTER (WHERE zones.verified)
    FROM added_zones AS zones JOIN generate_series(0, 100, 5) AS t(threshold) ON zones.confidence * 100 >= t.threshold
    GROUP BY country, year, classification, source, coalesce(verified, false), t.threshold;
    -- The data version trigger fired first (triggers fire in name order): the summaries are in step
    -- again only if they were before this statement.
    UPDATE forestguard_meta SET value = (SELECT value FROM forestguard_meta WHERE key = 'data_version')
    WHERE key = 'summary_version' AND value = (SELECT value FROM forestguard_meta WHERE key = 'data_version') - 1;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forestguard_summary_removed() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO forestguard_zone_summary
    SELECT country, year, classification, source, coalesce(verified, false), -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false);
    INSERT INTO forestguard_zone_summary_confidence
    SELECT country, year, classification, source, coalesce(verified, false), confidence, -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones
    GROUP BY country, year, classification, source, coalesce(verified, false), confidence;
    INSERT INTO forestguard_zone_summary_thresholds
    SELECT country, year, classification, source, coalesce(verified, false), t.threshold, -count(*), -(sum(zones.area_ha) * 100)::bigint, -(coalesce(sum(zones.confidence), 0) * 100)::bigint, -count(zones.confidence), -count(*) FILTER (WHERE zones.verified)
    FROM removed_zones AS zones JOIN generate_series(0, 100, 5) AS t(threshold) ON zones.confidence * 100 >= t.threshold
    GROUP BY country, year, classification, source, coalesce(verified, false), t.threshold;
    -- The data version trigger fired first (triggers fire in name order): the summaries are in step
    -- again only if they were before this statement.
    UPDATE forestguard_meta SET value = (SELECT value FROM forestguard_meta WHERE key = 'data_version')
    WHERE key = 'summary_version' AND value = (SELECT value FROM forestguard_meta WHERE key = 'data_version') - 1;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forestguard_summary_truncated() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DELETE FROM forestguard_zone_summary;
    DELETE FROM forestguard_zone_summary_confidence;
    DELETE FROM forestguard_zone_summary_thresholds;
    UPDATE forestguard_meta SET value = (SELECT value FROM forestguard_meta WHERE key = 'data_version') WHERE key = 'summary_version';
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER forestguard_summary_update
    AFTER UPDATE ON deforestation_zones REFERENCING OLD TABLE AS removed_zones NEW TABLE AS added_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_updated();
CREATE OR REPLACE TRIGGER forestguard_summary_delete
    AFTER DELETE ON deforestation_zones REFERENCING OLD TABLE AS removed_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_removed();
CREATE OR REPLACE TRIGGER forestguard_summary_truncate
    AFTER TRUNCATE ON deforestation_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_truncated();
