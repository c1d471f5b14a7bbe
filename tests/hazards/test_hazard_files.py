"""Every hazard file through ``forestguard ingest`` then ``stats``, as a user would run them.

The command runs in-process (``forestguard.cli.main``, the same entry point as
``python -m forestguard``) so that ~70 files take seconds; tests/cli runs the
real subprocess for exit codes and output streams.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from forestguard import stores
from forestguard.cli import main

from .files import HAZARDS, Hazard

REJECT_LINE = re.compile(r"^(?P<file>.+): feature (?P<feature>\d+): (?P<field>[a-z_, ]+): (?P<reason>.+)$")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    noisy = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    assert not noisy, f"warnings escaped to the user: {[str(w.message) for w in noisy]}"
    return code, out, err


@pytest.fixture
def store_url(demo_duckdb: str) -> str:
    """A store that already holds zones (conftest's small demo set): a hazard must leave them alone."""
    return demo_duckdb


def state(url: str) -> tuple[int, int]:
    with stores.open(url, read_only=True) as store:
        return store.count(), store.data_version()


@pytest.mark.parametrize("hazard", HAZARDS, ids=[h.name for h in HAZARDS])
def test_hazard_through_ingest_and_stats(hazard: Hazard, tmp_path: Path, store_url: str, capsys) -> None:
    check_hazard(hazard, tmp_path, store_url, capsys)


GEOJSON_HAZARDS = [h for h in HAZARDS if h.name.endswith(".geojson") and h.content]


@pytest.mark.parametrize("hazard", GEOJSON_HAZARDS, ids=[h.name for h in GEOJSON_HAZARDS])
def test_a_streamed_geojson_hazard_gives_what_the_whole_read_gives(hazard: Hazard, tmp_path: Path, store_url: str, capsys, monkeypatch) -> None:
    """Every GeoJSON file over the streaming threshold (one byte here), two records a batch: the same outcome, lines and numbers."""
    import forestguard.ingest
    import forestguard.sources

    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(forestguard.ingest, "BATCH_ROWS", 2)
    check_hazard(hazard, tmp_path, store_url, capsys)


def check_hazard(hazard: Hazard, tmp_path: Path, store_url: str, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = hazard.write(folder)
    before = state(store_url)

    code, out, err = run(capsys, "ingest", str(path), "--db", store_url, *hazard.args)

    assert "Traceback" not in err and "Traceback" not in out
    assert "internal error" not in err
    after = state(store_url)
    if hazard.outcome == "load":
        assert code == 0, err
        assert out.splitlines()[0].startswith(f"{path}: using "), out
        assert after == (before[0] + hazard.zones, before[1] + 1)
    else:
        assert after == before, "a rejected or empty input must leave the store as it was"
    if hazard.outcome == "empty":
        assert code == 0
        assert "nothing loaded" in out
    if hazard.outcome == "file":
        assert code == 1
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"error: {path}: ") and hazard.reason in lines[0], lines[0]
    if hazard.outcome == "reject":
        assert code == 1
        assert out.splitlines()[0].startswith(f"{path}: using "), "the columns used are said even when records are rejected"
        lines = err.splitlines()
        assert lines[-1].startswith("nothing was loaded")
        found = [REJECT_LINE.match(line) for line in lines[:-1]]
        assert all(found), lines
        assert [(int(m["feature"]), m["field"]) for m in found] == [(n, f) for n, f, _ in hazard.lines]
        for m, (_, _, fragment) in zip(found, hazard.lines):
            assert m["file"] == str(path)
            assert fragment in m["reason"], (m["reason"], fragment)

    # stats still answers, and agrees with the store.
    code, out, err = run(capsys, "stats", "--db", store_url, "--by", "", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["data_version"] == after[1]
    assert result["rows"][0]["zones"] == after[0]


def test_hostile_text_is_stored_exactly(tmp_path: Path, capsys) -> None:
    hazard = next(h for h in HAZARDS if h.name == "hostile-text.geojson")
    path = hazard.write(tmp_path)
    url = str(tmp_path / "z.duckdb")
    assert run(capsys, "ingest", str(path), "--db", url)[0] == 0
    given = json.loads(hazard.content)["features"][0]["properties"]
    with stores.open(url, read_only=True) as store:
        row = store.zones().iloc[0]
        assert store.count() == 1  # the table survived its own name in a DROP TABLE
    assert (row["country"], row["region"], row["source"]) == (given["country"], given["region"], given["source"])
    code, out, _ = run(capsys, "stats", "--db", url, "--country", given["country"], "--format", "json")
    assert code == 0 and json.loads(out)["rows"][0]["country"] == given["country"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("ingest",), "Missing argument"),
        (("ingest", "a.geojson", "--map", "country"), "COLUMN=VALUE"),
        (("ingest", "a.geojson", "--set", "year=2019", "--set", "year=2020"), "given twice"),
        (("stats", "--year", "2020", "--from", "2019"), "cannot be combined"),
        (("stats", "--classification", "maybe"), "not legal or illegal"),
        (("stats", "--min-confidence", "2"), "--min-confidence"),
    ],
)
def test_usage_errors_exit_2_without_touching_anything(args, fragment: str, tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, *args, "--db", str(tmp_path / "x.duckdb"))
    assert code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "x.duckdb").exists()
