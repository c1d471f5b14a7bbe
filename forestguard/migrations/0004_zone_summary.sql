-- 0004: the statistics summaries, kept in step with the zones by every writer.
--
-- Statistics of millions of zones must answer within the design's database latency (< 100 ms):
-- a GROUP BY over every zone cannot. The summaries hold exact sums per combination of the columns
-- a statistic filters or groups by: forestguard_zone_summary per (country, year, classification,
-- source, verified), a few thousand rows however many zones, for every statistic without a
-- minimum confidence; forestguard_zone_summary_confidence with confidence too, for those with
-- one. Statement-level triggers with transition tables add each write's sums (negative for
-- removed zones) in the writer's own transaction, so psql, a legacy loader and ForestGuard's
-- COPY alike keep them exact; loads fold repeated combinations (forestguard.stores.postgis.load).
-- Statistics with a bounding box still read the zones.

CREATE TABLE IF NOT EXISTS forestguard_zone_summary (
    country VARCHAR(100) NOT NULL,
    year INTEGER NOT NULL,
    classification VARCHAR(20),
    source VARCHAR(100),
    verified BOOLEAN NOT NULL,
    zones BIGINT NOT NULL,
    area_ha NUMERIC NOT NULL,
    confidence_sum NUMERIC,
    confidence_n BIGINT NOT NULL,
    verified_zones BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_zone_summary_country_year ON forestguard_zone_summary (country, year);
DELETE FROM forestguard_zone_summary;
INSERT INTO forestguard_zone_summary
SELECT country, year, classification, source, coalesce(verified, false), count(*), sum(area_ha), sum(confidence), count(confidence), count(*) FILTER (WHERE verified)
FROM deforestation_zones GROUP BY country, year, classification, source, coalesce(verified, false);

CREATE TABLE IF NOT EXISTS forestguard_zone_summary_confidence (
    country VARCHAR(100) NOT NULL,
    year INTEGER NOT NULL,
    classification VARCHAR(20),
    source VARCHAR(100),
    verified BOOLEAN NOT NULL,
    confidence DECIMAL(3,2),
    zones BIGINT NOT NULL,
    area_ha NUMERIC NOT NULL,
    confidence_sum NUMERIC,
    confidence_n BIGINT NOT NULL,
    verified_zones BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_zone_summary_confidence_country_year ON forestguard_zone_summary_confidence (country, year);
DELETE FROM forestguard_zone_summary_confidence;
INSERT INTO forestguard_zone_summary_confidence
SELECT country, year, classification, source, coalesce(verified, false), confidence, count(*), sum(area_ha), sum(confidence), count(confidence), count(*) FILTER (WHERE verified)
FROM deforestation_zones GROUP BY country, year, classification, source, coalesce(verified, false), confidence;

CREATE OR REPLACE FUNCTION forestguard_summary_added() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO forestguard_zone_summary
    SELECT country, year, classification, source, coalesce(verified, false), count(*), sum(area_ha), sum(confidence), count(confidence), count(*) FILTER (WHERE verified)
    FROM added_zones GROUP BY country, year, classification, source, coalesce(verified, false);
    INSERT INTO forestguard_zone_summary_confidence
    SELECT country, year, classification, source, coalesce(verified, false), confidence, count(*), sum(area_ha), sum(confidence), count(confidence), count(*) FILTER (WHERE verified)
    FROM added_zones GROUP BY country, year, classification, source, coalesce(verified, false), confidence;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION forestguard_summary_removed() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO forestguard_zone_summary
    SELECT country, year, classification, source, coalesce(verified, false), -count(*), -sum(area_ha), -sum(confidence), -count(confidence), -count(*) FILTER (WHERE verified)
    FROM removed_zones GROUP BY country, year, classification, source, coalesce(verified, false);
    INSERT INTO forestguard_zone_summary_confidence
    SELECT country, year, classification, source, coalesce(verified, false), confidence, -count(*), -sum(area_ha), -sum(confidence), -count(confidence), -count(*) FILTER (WHERE verified)
    FROM removed_zones GROUP BY country, year, classification, source, coalesce(verified, false), confidence;
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
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER forestguard_summary_insert
    AFTER INSERT ON deforestation_zones REFERENCING NEW TABLE AS added_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_added();
CREATE OR REPLACE TRIGGER forestguard_summary_update_old
    AFTER UPDATE ON deforestation_zones REFERENCING OLD TABLE AS removed_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_removed();
CREATE OR REPLACE TRIGGER forestguard_summary_update_new
    AFTER UPDATE ON deforestation_zones REFERENCING NEW TABLE AS added_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_added();
CREATE OR REPLACE TRIGGER forestguard_summary_delete
    AFTER DELETE ON deforestation_zones REFERENCING OLD TABLE AS removed_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_removed();
CREATE OR REPLACE TRIGGER forestguard_summary_truncate
    AFTER TRUNCATE ON deforestation_zones
    FOR EACH STATEMENT EXECUTE FUNCTION forestguard_summary_truncated();
