"""Configuration: one module reads the environment; secrets never leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestguard.config import DEFAULT_DB_NAME, VARIABLES, redact, settings


def test_defaults_mean_the_embedded_store() -> None:
    config = settings({})
    assert config.database_url is None and config.redis_url is None and config.s3_bucket is None
    assert config.data_dir == Path("data")
    assert config.store_url == str(Path("data") / DEFAULT_DB_NAME)
    assert (config.log_level, config.cache_prefix) == ("INFO", "fg")
    assert config.snapshots_dir == Path("data/snapshots") and config.reports_dir == Path("data/reports")


def test_environment_overrides_and_blank_means_unset() -> None:
    config = settings({"DATABASE_URL": " postgresql://h/db ", "REDIS_URL": "   ", "FORESTGUARD_DATA_DIR": "/srv/fg", "FORESTGUARD_LOG_LEVEL": "debug"})
    assert config.database_url == "postgresql://h/db" and config.store_url == "postgresql://h/db"
    assert config.redis_url is None
    assert config.default_db == Path("/srv/fg") / DEFAULT_DB_NAME
    assert config.log_level == "DEBUG"


def test_memory_budget_is_a_positive_number_of_megabytes() -> None:
    from forestguard.errors import UserError

    assert settings({}).memory_mb == 1536 and settings({"FORESTGUARD_MEMORY_MB": "800"}).memory_mb == 800
    assert settings({"FORESTGUARD_MEMORY_MB": "1600"}).duckdb_memory_limit == "200MB"
    assert settings({"FORESTGUARD_MEMORY_MB": "800"}).duckdb_memory_limit == "128MB"
    for bad in ("0", "-5", "lots"):
        with pytest.raises(UserError, match="FORESTGUARD_MEMORY_MB"):
            settings({"FORESTGUARD_MEMORY_MB": bad})


def test_the_test_environment_is_isolated(tmp_path: Path) -> None:
    config = settings()
    assert config.database_url is None and str(config.data_dir).startswith(str(tmp_path))


def test_every_field_has_a_documented_variable() -> None:
    for name in ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "S3_BUCKET", "AWS_ENDPOINT_URL", "SENTRY_DSN", "FORESTGUARD_DATA_DIR"):
        assert VARIABLES[name]


@pytest.mark.parametrize(
    "text, hidden, kept",
    [
        ("postgresql://forest:s3cr3t@db:5432/zones", "s3cr3t", "postgresql://forest:***@db:5432/zones"),
        ("redis://:p%40ss@cache:6379/0", "p%40ss", "redis://:***@cache:6379/0"),
        ("host=db password=hunter2 user=x", "hunter2", "password=***"),
        ("https://x?token=abc&b=1", "abc", "token=***&b=1"),
    ],
)
def test_redact(text: str, hidden: str, kept: str) -> None:
    assert hidden not in redact(text) and kept in redact(text)


def test_redact_leaves_plain_text() -> None:
    assert redact("data/forestguard.duckdb") == "data/forestguard.duckdb"
    assert redact(None) == "" and redact("") == ""
