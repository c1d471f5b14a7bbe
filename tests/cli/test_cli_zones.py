"""``python -m forestguard ingest|stats|demo`` in a subprocess: exit codes, streams, messages.

Exit 0 success, 1 failure, 2 usage; errors are lines on stderr, never a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from forestguard import stores
from forestguard.schema import current_year

from ..hazards.files import GOOD, collection, dumps, feature, square, subprocess_cli

REJECT_LINE = re.compile(r"^(?P<file>.+): feature (?P<feature>\d+): (?P<field>[a-z_, ]+): (?P<reason>.+)$")


def write(path: Path, *features: dict) -> Path:
    path.write_bytes(dumps(collection(*features)))
    return path


def good(i: int, **changes) -> dict:
    return feature({**GOOD, **changes}, square(10 + i))


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "internal error" not in result.stderr


def test_ingest_then_stats(tmp_path: Path) -> None:
    source = write(tmp_path / "zones.geojson", good(0), good(1, classification=None, confidence=None), good(2, year=2019, verified=False, note="ignored"))
    db = tmp_path / "fg.duckdb"
    result = subprocess_cli("ingest", str(source), "--db", str(db), "--source", "PRODES")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{source}: using country, classification, year, source=(--set PRODES), confidence, verified; ignoring note"
    assert re.match(r"loaded 3 zone\(s\) from 3 record\(s\) into duckdb \(data version 1\)", lines[1])

    result = subprocess_cli("stats", "--db", str(db), "--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    document = json.loads(result.stdout)
    assert list(document) == ["engine", "data_version", "rows"]
    assert (document["engine"], document["data_version"]) == ("duckdb", 1)
    assert [list(row) for row in document["rows"]] == [["country", "year", "classification", "zones", "area_ha", "mean_confidence", "verified_zones"]] * 3
    assert [(r["year"], r["classification"], r["zones"], r["mean_confidence"], r["verified_zones"]) for r in document["rows"]] == [
        (2019, "illegal", 1, 0.8, 0),
        (2020, "illegal", 1, 0.8, 1),
        (2020, None, 1, None, 1),
    ]

    result = subprocess_cli("stats", "--db", str(db), "--by", "year", "--from", "2020", "--to", "2024", "--format", "csv")
    assert result.returncode == 0
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [(r["year"], r["zones"], r["verified_zones"]) for r in rows] == [("2020", "2", "2")]
    assert list(rows[0]) == ["year", "zones", "area_ha", "mean_confidence", "verified_zones"]


def test_rejected_records_one_line_each_at_most_twenty(tmp_path: Path) -> None:
    db = tmp_path / "fg.duckdb"
    with stores.open(str(db), create=True):
        pass
    source = write(tmp_path / "bad.geojson", good(0), *(good(i, year=1900 + i) for i in range(1, 26)))
    result = subprocess_cli("ingest", str(source), "--db", str(db))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(f"{source}: using ")
    lines = result.stderr.splitlines()
    assert len(lines) == 22
    for i, line in enumerate(lines[:20], start=1):
        match = REJECT_LINE.match(line)
        assert match and (match["file"], match["feature"], match["field"]) == (str(source), str(i), "year")
        assert match["reason"] == f"{1900 + i} is outside 1970..{current_year()}"
    assert "5 more" in lines[20] and "25 in all" in lines[20]
    assert lines[21].startswith("nothing was loaded")
    with stores.open(str(db), read_only=True) as store:
        assert (store.count(), store.data_version()) == (0, 0)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("truncated.geojson", dumps(collection(good(0)))[:60], "is not valid JSON"),
        ("binary.geojson", bytes(range(256)) * 4, "is not UTF-8"),
        ("folder.geojson", None, "is a directory"),
        ("garbage.gpkg", b"\x00garbage\xff" * 500, "cannot be read"),
    ],
)
# (tests/hazards runs every other unreadable case through the same entry point, in-process.)
def test_unreadable_input_is_one_line_and_writes_nothing(tmp_path: Path, name: str, content: bytes | None, fragment: str) -> None:
    path = tmp_path / name
    if name.startswith("folder"):
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    db = tmp_path / "fg.duckdb"
    result = subprocess_cli("ingest", str(path), "--db", str(db))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {path}: ") and fragment in result.stderr
    assert not db.exists()


def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.geojson", good(0))
    path.chmod(0)
    try:
        result = subprocess_cli("ingest", str(path), "--db", str(tmp_path / "fg.duckdb"), honour_file_modes=True)
    finally:
        path.chmod(0o644)
    no_traceback(result)
    assert result.returncode == 1 and "permission denied" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "fg.duckdb").exists()


def test_stats_on_a_missing_store_is_an_error_that_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "fg.duckdb"
    result = subprocess_cli("stats", "--db", str(db))
    no_traceback(result)
    assert result.returncode == 1 and result.stderr.startswith("error: no store at") and result.stderr.count("\n") == 1
    assert not db.parent.exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("stats", "--by", "country,region"), "--by"),
        (("stats", "--from", "2021", "--to", "2020"), "after --to"),
        (("ingest", "x.geojson", "--set", "colour=red"), "not a zone column"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], fragment: str) -> None:
    result = subprocess_cli(*args)
    no_traceback(result)
    assert result.returncode == 2 and fragment in result.stderr


def test_skip_invalid_and_empty_input(tmp_path: Path) -> None:
    db = tmp_path / "fg.duckdb"
    source = write(tmp_path / "mixed.geojson", good(0), good(1, country=""), good(2))
    rejects = tmp_path / "rejects.csv"
    result = subprocess_cli("ingest", str(source), "--db", str(db), "--skip-invalid", str(rejects))
    no_traceback(result)
    assert result.returncode == 0
    assert f"skipped 1 invalid record(s); reasons written to {rejects}" in result.stdout and "loaded 2 zone(s)" in result.stdout
    assert list(csv.reader(rejects.open(encoding="utf-8")))[1][:3] == [str(source), "1", "country"]

    empty = write(tmp_path / "empty.geojson")
    fresh = tmp_path / "fresh.duckdb"
    result = subprocess_cli("ingest", str(empty), "--db", str(fresh))
    assert result.returncode == 0 and "no records in the input: nothing loaded" in result.stdout
    assert not fresh.exists()


def test_demo_is_deterministic_and_refuses_to_mix_with_existing_zones(tmp_path: Path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    for db in (a, b):
        result = subprocess_cli("demo", "--db", str(db), "--zones", "300", "--seed", "5")
        assert result.returncode == 0, result.stderr
    tables = []
    for db in (a, b):
        with stores.open(str(db), read_only=True) as store:
            tables.append(store.zones_arrow(columns=["country", "year", "classification", "area_ha", "confidence", "geometry"]))
    assert tables[0].num_rows == 300 and tables[0].equals(tables[1])
    result = subprocess_cli("demo", "--db", str(a), "--zones", "10")
    assert result.returncode == 2 and "already has 300 zones" in result.stderr
