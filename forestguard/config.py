"""Configuration from the environment: the one place that reads it.

Every other module asks :func:`settings` instead of touching ``os.environ`` so
that the list of variables below is the complete reference (the operations
guide is checked against it) and so that secrets never leak: use
:func:`redact` before a URL goes to a log, an error message or a report.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

#: Every environment variable ForestGuard reads, with what it is for.
VARIABLES: dict[str, str] = {
    "DATABASE_URL": "Zone store: a .duckdb path, postgresql://… or a snapshot. Unset: embedded DuckDB under the data folder. A hot standby (read replica) serves reads and refuses writes; /readyz reports its role.",
    "DATABASE_READ_URL": "Read replica for PostgreSQL statistics and maps (optional).",
    "REDIS_URL": "Redis for the shared cache (redis://…, rediss:// for TLS); any node of a Redis Cluster is enough (detected). Unset: in-process cache.",
    "FORESTGUARD_CACHE_PREFIX": "Prefix of every cache key, so several deployments can share one Redis (default 'fg').",
    "S3_BUCKET": "Bucket for snapshots, reports and backups. Unset: local folders.",
    "AWS_ENDPOINT_URL": "Endpoint of an S3-compatible server (MinIO, moto); unset on AWS.",
    "SENTRY_DSN": "Sentry error reporting (optional).",
    "FORESTGUARD_DATA_DIR": "Folder of the embedded store, local snapshots and reports (default ./data).",
    "FORESTGUARD_LOG_LEVEL": "Logging level (default INFO).",
    "FORESTGUARD_DEBUG": "1 (or true/yes/on): a command's internal error prints its traceback instead of one line.",
    "FORESTGUARD_TILE_URL": "Optional XYZ tile URL for dashboard basemaps; unset means no tiles are fetched.",
    "FORESTGUARD_DASK": "Dask scheduler for snapshot statistics, maps and reports (stats, map, report run, pipeline run): 'local' starts a LocalCluster, tcp://host:8786 uses a running cluster; --dask overrides it. Unset: the embedded engine.",
    "FORESTGUARD_MEMORY_MB": "Memory budget of one process in MB (default 1536, for a 2 GB task): sizes the in-memory map layer, caches and DuckDB's memory limit.",
    "FORESTGUARD_AREA_MAX_HA": "Largest area (geodesic hectares) statistics, saved areas and watches accept (default 100000000, 100 Mha).",
    "FORESTGUARD_AREA_MAX_VERTICES": "Most vertices an area (or one plot) may have (default 100000).",
    "FORESTGUARD_API_MAX_BODY_MB": "Largest POST /api/stats body in MB (default 10); larger ones are answered 413.",
    "FORESTGUARD_PUBLIC_URL": "The dashboard's public address, for links in alerts (default http://localhost:8501).",
    "FORESTGUARD_WEBHOOK_SECRET": "Default HMAC secret of alert webhooks (area watch --secret-env names another variable).",
    "FORESTGUARD_WEBHOOK_ALLOW_PRIVATE": "1 lets webhooks go to loopback, private and link-local addresses (tests, private networks); refused by default.",
    "FORESTGUARD_EVIDENCE_RULES": "The evidence rules file (TOML) evidence commands, statistics and reports use when --rules is not given (default: the rules shipped in forestguard/evidence/rules.toml).",
}

#: A process's memory budget when FORESTGUARD_MEMORY_MB is not set: the design's 2 GB task, less headroom.
DEFAULT_MEMORY_MB = 1536

DEFAULT_DB_NAME = "forestguard.duckdb"
DEFAULT_AREA_MAX_HA = 100_000_000.0
DEFAULT_AREA_MAX_VERTICES = 100_000
DEFAULT_API_MAX_BODY_MB = 10
#: Zones a download (GeoJSON/GeoParquet) or an /ogc page may hold unless ``serve --download-limit`` says otherwise.
DEFAULT_DOWNLOAD_LIMIT = 50_000
DEFAULT_PUBLIC_URL = "http://localhost:8501"
DEFAULT_WEBHOOK_SECRET_VARIABLE = "FORESTGUARD_WEBHOOK_SECRET"
#: Documented variables holding secrets: read where they are used (:func:`secret`), never kept in :class:`Settings`.
SECRET_VARIABLES = frozenset({DEFAULT_WEBHOOK_SECRET_VARIABLE})


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration, taken when :func:`settings` is called."""

    database_url: str | None
    database_read_url: str | None
    redis_url: str | None
    cache_prefix: str
    s3_bucket: str | None
    aws_endpoint_url: str | None
    sentry_dsn: str | None
    data_dir: Path
    log_level: str
    debug: bool
    tile_url: str | None
    memory_mb: int = DEFAULT_MEMORY_MB
    dask: str | None = None
    area_max_ha: float = DEFAULT_AREA_MAX_HA
    area_max_vertices: int = DEFAULT_AREA_MAX_VERTICES
    api_max_body_bytes: int = DEFAULT_API_MAX_BODY_MB << 20
    public_url: str = DEFAULT_PUBLIC_URL
    webhook_allow_private: bool = False
    evidence_rules: str | None = None

    @property
    def duckdb_memory_limit(self) -> str:
        """DuckDB's own limit: an eighth of the budget (it spills to disk beyond; its block cache is what grows to it), at least 128 MB."""
        return f"{max(128, self.memory_mb // 8)}MB"

    @property
    def default_db(self) -> Path:
        return self.data_dir / DEFAULT_DB_NAME

    @property
    def store_url(self) -> str:
        """The store every command uses when ``--db`` is not given."""
        return self.database_url or str(self.default_db)

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def debug(env: Mapping[str, str] | None = None) -> bool:
    """FORESTGUARD_DEBUG, read alone: the command line asks it while handling an error, when another
    variable (a bad FORESTGUARD_MEMORY_MB) must not stop the traceback that was asked for."""
    return (_get(os.environ if env is None else env, "FORESTGUARD_DEBUG") or "").lower() in ("1", "true", "yes", "on")


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration; cheap enough to call wherever it is needed."""
    env = os.environ if env is None else env
    return Settings(
        database_url=_get(env, "DATABASE_URL"),
        database_read_url=_get(env, "DATABASE_READ_URL"),
        redis_url=_get(env, "REDIS_URL"),
        cache_prefix=_get(env, "FORESTGUARD_CACHE_PREFIX") or "fg",
        s3_bucket=_get(env, "S3_BUCKET"),
        aws_endpoint_url=_get(env, "AWS_ENDPOINT_URL"),
        sentry_dsn=_get(env, "SENTRY_DSN"),
        data_dir=Path(_get(env, "FORESTGUARD_DATA_DIR") or "data"),
        log_level=(_get(env, "FORESTGUARD_LOG_LEVEL") or "INFO").upper(),
        debug=debug(env),
        tile_url=_get(env, "FORESTGUARD_TILE_URL"),
        memory_mb=_positive_int(env, "FORESTGUARD_MEMORY_MB", DEFAULT_MEMORY_MB),
        dask=_get(env, "FORESTGUARD_DASK"),
        area_max_ha=float(_positive_int(env, "FORESTGUARD_AREA_MAX_HA", int(DEFAULT_AREA_MAX_HA), "hectares")),
        area_max_vertices=_positive_int(env, "FORESTGUARD_AREA_MAX_VERTICES", DEFAULT_AREA_MAX_VERTICES, "vertices"),
        api_max_body_bytes=_positive_int(env, "FORESTGUARD_API_MAX_BODY_MB", DEFAULT_API_MAX_BODY_MB) << 20,
        public_url=(_get(env, "FORESTGUARD_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
        webhook_allow_private=_get(env, "FORESTGUARD_WEBHOOK_ALLOW_PRIVATE") in ("1", "true", "yes"),
        evidence_rules=_get(env, "FORESTGUARD_EVIDENCE_RULES"),
    )


def _positive_int(env: Mapping[str, str], name: str, default: int, unit: str = "megabytes") -> int:
    text = _get(env, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        from .errors import UserError

        raise UserError(f"{name} must be a whole number of {unit} above 0, not {text!r}")
    return value


def secret(variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """The secret held by an environment variable an operator named (a webhook's ``--secret-env``).

    The variable's name is stored, never its value: the secret stays in the environment.
    """
    return _get(os.environ if env is None else env, variable)


_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@", re.I)
_PASSWORD_PARAM = re.compile(r"(?P<key>password|sslpassword|secret|token)=(?P<value>[^&\s]+)", re.I)


def redact(text: str | None) -> str:
    """Hide passwords in URLs and key=value secrets so text can be logged or shown."""
    if not text:
        return ""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['key']}=***", text)
