-- 0007: reference layers with their provenance, and evidence per zone (issue 19).
--
-- Beside the zone table, never altering it. A layer (protected areas, indigenous lands,
-- properties, authorizations, embargoes) keeps who published it, as of when, the sha256 of the
-- file it came from and a version drawn from a counter at each add; its features keep an id
-- and validity dates. Findings are (zone, layer version, feature) overlaps of more than 0 ha;
-- each zone's evidence row keeps its suggested class, the rule and rules version behind it, and
-- the zone's year and geometry hash as read, so `forestguard evidence compute` redoes only what
-- changed. `evidence apply` records every classification it wrote.
INSERT INTO forestguard_meta (key, value) VALUES ('evidence_version', 0), ('layer_version', 0)
ON CONFLICT (key) DO NOTHING;

CREATE TABLE IF NOT EXISTS forestguard_layers (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    kind TEXT NOT NULL CHECK (kind IN ('protected_area', 'indigenous_land', 'property', 'authorization', 'embargo')),
    source TEXT NOT NULL,
    as_of DATE NOT NULL,
    sha256 TEXT NOT NULL,
    source_file TEXT,
    features INTEGER NOT NULL,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    version BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS forestguard_layer_features (
    layer TEXT NOT NULL REFERENCES forestguard_layers (name) ON DELETE CASCADE,
    feature_id TEXT NOT NULL,
    valid_from DATE,
    valid_to DATE,
    geometry GEOMETRY(MultiPolygon, 4326) NOT NULL,
    PRIMARY KEY (layer, feature_id)
);

CREATE TABLE IF NOT EXISTS forestguard_findings (
    zone_id INTEGER NOT NULL,
    layer TEXT NOT NULL,
    layer_version BIGINT NOT NULL,
    feature_id TEXT NOT NULL,
    overlap_ha DOUBLE PRECISION NOT NULL,
    overlap_share DOUBLE PRECISION NOT NULL,
    valid_at_zone_year BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_findings_zone ON forestguard_findings (zone_id);
CREATE INDEX IF NOT EXISTS idx_findings_layer ON forestguard_findings (layer, layer_version);

CREATE TABLE IF NOT EXISTS forestguard_evidence (
    zone_id INTEGER PRIMARY KEY,
    zone_year INTEGER NOT NULL,
    geometry_hash TEXT NOT NULL,
    suggested TEXT NOT NULL CHECK (suggested IN ('legal', 'illegal', 'undetermined')),
    rule TEXT,
    rules_version TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS forestguard_evidence_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS forestguard_evidence_applied (
    zone_id INTEGER NOT NULL,
    classification TEXT NOT NULL,
    rule TEXT,
    rules_version TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_evidence_applied_at ON forestguard_evidence_applied (applied_at);

-- Every evidence run that wrote something: the rules (version, sha256) and layers it used.
CREATE TABLE IF NOT EXISTS forestguard_evidence_runs (
    computed_at TIMESTAMPTZ NOT NULL,
    data_version BIGINT NOT NULL,
    rules_version TEXT NOT NULL,
    rules_sha256 TEXT NOT NULL,
    layers TEXT NOT NULL,
    zones_measured BIGINT NOT NULL,
    findings_written BIGINT NOT NULL,
    suggestions_evaluated BIGINT NOT NULL,
    suggested TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL
);
