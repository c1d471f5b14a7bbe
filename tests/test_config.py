"""Configuration: one module reads the environment; secrets never leak."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import forestguard
from forestguard.config import DEFAULT_DB_NAME, SECRET_VARIABLES, VARIABLES, debug, redact, secret, settings


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


def _fields_set_by(name: str) -> set[str]:
    """The settings a variable changes: the first of a few values that settings() takes and that differs from unset."""
    from forestguard.errors import UserError

    default = dataclasses.asdict(settings({}))
    for value in (f"value-of-{name}", "777", "1"):
        try:
            given = dataclasses.asdict(settings({name: value}))
        except UserError:
            continue
        changed = {field for field in given if given[field] != default[field]}
        if changed:
            return changed
    return set()


@pytest.mark.parametrize("name", sorted(set(VARIABLES) - SECRET_VARIABLES))
def test_every_variable_is_read_by_settings(name: str) -> None:
    """A variable in the reference (and so in docs/operations.md) that settings() ignores is a lie."""
    assert VARIABLES[name].strip()
    assert _fields_set_by(name), f"{name} is documented but settings() does not read it"


@pytest.mark.parametrize("name", sorted(SECRET_VARIABLES))
def test_secrets_are_read_where_used_and_never_kept(name: str) -> None:
    """A secret variable is documented, read through config.secret, and in no setting (settings are shown and logged)."""
    assert VARIABLES[name].strip()
    assert secret(name, {name: "s3cret-value"}) == "s3cret-value" and secret(name, {name: "  "}) is None
    assert not _fields_set_by(name) and "s3cret-value" not in repr(settings({name: "s3cret-value"}))


def test_every_setting_comes_from_a_documented_variable() -> None:
    fields = {f.name for f in dataclasses.fields(settings({}))}
    from_variables = set().union(*(_fields_set_by(name) for name in VARIABLES))
    assert fields - from_variables == set(), "settings that no variable in VARIABLES sets"


def test_debug_is_an_explicit_yes() -> None:
    assert [settings({"FORESTGUARD_DEBUG": v}).debug for v in ("1", "true", "YES", "on")] == [True] * 4
    assert [settings({"FORESTGUARD_DEBUG": v}).debug for v in ("", "0", "false", "no", "off")] == [False] * 5
    assert debug({"FORESTGUARD_DEBUG": "1", "FORESTGUARD_MEMORY_MB": "lots"})  # read alone: a bad budget does not hide it


def environment_reads(source: str) -> list[str]:
    """Names of environment variables a module reads itself: os.environ.get/[…], os.getenv, environ.get with a constant."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and isinstance(node.args[0], ast.Constant):
            owner = ast.unparse(node.func.value)
            if (node.func.attr in ("get", "pop", "setdefault") and owner.endswith("environ")) or (node.func.attr == "getenv" and owner == "os"):
                target = node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and ast.unparse(node.value).endswith("environ"):
            target = ast.unparse(node.slice)
        if target is not None:
            found.append(str(target))
    return found


def test_the_reader_of_reads_finds_them() -> None:
    """Negative control for the test below."""
    code = 'import os\nfrom os import environ\nos.environ.get("A")\nos.getenv("B", "x")\nenviron["C"]\nos.environ["D"] = "1"\n{**os.environ}\n'
    assert environment_reads(code) == ["A", "B", "'C'"]


def test_only_the_config_module_reads_the_environment() -> None:
    package = Path(forestguard.__file__).parent
    reads = {str(path.relative_to(package)): environment_reads(path.read_text(encoding="utf-8")) for path in package.rglob("*.py") if path.name != "config.py" or path.parent != package}
    assert {path: names for path, names in reads.items() if names} == {}


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
