-- 0006: saved areas, watches of them and the outbox of alert deliveries (issue 18).
--
-- Beside the zone table, never altering it. An area is one MultiPolygon in lon/lat, kept
-- with the sha256 of the file it came from; a watch names a saved area, the webhook and the
-- environment variable holding its secret (never the secret). An ingest writes its alerts
-- into forestguard_alerts in its own transaction (the outbox); `forestguard alerts deliver`
-- sends them afterwards, at least once, the id making each idempotent for the receiver.
CREATE TABLE IF NOT EXISTS forestguard_areas (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    geometry GEOMETRY(MultiPolygon, 4326) NOT NULL,
    sha256 TEXT NOT NULL,
    source_file TEXT,
    added_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS forestguard_watches (
    area_name TEXT PRIMARY KEY REFERENCES forestguard_areas (name),
    webhook_url TEXT NOT NULL,
    secret_env TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS forestguard_alerts (
    id UUID PRIMARY KEY,
    area_name TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    secret_env TEXT NOT NULL,
    data_version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_alerts_due ON forestguard_alerts (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_alerts_created ON forestguard_alerts (created_at);
