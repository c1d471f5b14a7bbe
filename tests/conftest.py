"""Shared fixtures. Service fixtures start each real service once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from forestguard.demo import DemoSpec, demo_zones
from tests.fixtures.services import make_store

pytest_plugins = [
    "tests.fixtures.postgis",
    "tests.fixtures.redis",
    "tests.fixtures.redis_cluster",
    "tests.fixtures.replication",
    "tests.fixtures.s3",
    "tests.fixtures.dask",
    "tests.fixtures.browser",
    "tests.fixtures.webhook",
]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's configuration or writes into ./data."""
    for name in ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "S3_BUCKET", "SENTRY_DSN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def demo_small():
    """2,000 validated demo zones (deterministic), generated once."""
    return demo_zones(DemoSpec(zones=2_000, seed=7))


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return str(tmp_path / "zones.duckdb")


@pytest.fixture
def demo_duckdb(tmp_path: Path, demo_small) -> str:
    """A DuckDB store holding the small demo set; returns its URL."""
    return make_store(tmp_path / "demo.duckdb", demo_small)
