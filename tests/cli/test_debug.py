"""An internal error is one line on stderr, its traceback only when FORESTGUARD_DEBUG asks (read through forestguard.config)."""

from __future__ import annotations

import pytest

import forestguard.cli.zones
from forestguard.cli import main


def _broken_statistics(*args, **kwargs):
    raise RuntimeError("a bug\nover two lines")


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch, demo_duckdb: str) -> list[str]:
    monkeypatch.setattr(forestguard.cli.zones, "statistics", _broken_statistics)
    return ["stats", "--db", demo_duckdb]


def test_an_internal_error_is_one_line(broken: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DEBUG", "0")  # not a yes
    with pytest.raises(SystemExit) as exited:
        main(broken)
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err.splitlines() == ["error: internal error: RuntimeError: a bug over two lines (set FORESTGUARD_DEBUG=1 for the traceback)"]


def test_debug_lets_the_traceback_through(broken: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(broken)
