"""``forestguard layers|evidence|stats`` as a user runs them: documents, one-line errors, exit codes, nothing half-written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyproj
import pytest
import shapely

from forestguard import stores

from ..hazards.files import subprocess_cli
from .conftest import case_layer_files, cell, write_geojson, zone_ids

GEOD = pyproj.Geod(ellps="WGS84")


def ok(*args: str) -> str:
    result = subprocess_cli(*args)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout


def refused(code: int, *args: str) -> str:
    result = subprocess_cli(*args)
    assert result.returncode == code and "Traceback" not in result.stderr + result.stdout, (result.stdout, result.stderr)
    return result.stderr.strip().splitlines()[-1]


def hectares(shape) -> float:
    return abs(GEOD.geometry_area_perimeter(shape)[0]) / 10_000


@pytest.fixture
def zones_only(tmp_path) -> str:
    """The case zones in a DuckDB store without layers."""
    from .conftest import case_zones

    url = str(tmp_path / "cli.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(case_zones())
    return url


def test_layers_add_list_remove_keep_provenance(zones_only, tmp_path):
    files = case_layer_files(tmp_path)
    kind, path, maps = files["Embargos <IBAMA>"]
    out = ok("layers", "add", kind, str(path), "--name", "Embargos <IBAMA>", "--source", "IBAMA'; DROP TABLE x; --", "--as-of", "2024-04-30",
             *(f"--map={m}" for m in maps), "--db", zones_only)
    assert "stored embargo layer 'Embargos <IBAMA>': 1 features" in out
    listed = json.loads(ok("layers", "list", "--format", "json", "--db", zones_only))
    assert [(x["name"], x["kind"], x["source"], x["as_of"], x["features"], x["sha256"], x["source_file"]) for x in listed] == [
        ("Embargos <IBAMA>", "embargo", "IBAMA'; DROP TABLE x; --", "2024-04-30", 1, hashlib.sha256(path.read_bytes()).hexdigest(), path.name)]
    assert listed[0]["added_at"].endswith("+00:00")
    # The same name again is refused unless replaced.
    assert "Embargos <IBAMA>" in refused(1, "layers", "add", kind, str(path), "--name", "Embargos <IBAMA>", "--source", "x", "--as-of", "2024-04-30",
                                         *(f"--map={m}" for m in maps), "--db", zones_only)
    ok("layers", "remove", "Embargos <IBAMA>", "--db", zones_only)
    assert json.loads(ok("layers", "list", "--format", "json", "--db", zones_only)) == []
    assert refused(1, "layers", "remove", "nope", "--db", zones_only).startswith("error: no reference layer 'nope'")


def test_a_bad_layer_file_is_refused_in_one_line_and_nothing_is_stored(zones_only, tmp_path):
    authorization = write_geojson(tmp_path / "asv.geojson", [cell(0), cell(1)],
                                  [{"permit": "A", "from": "2019-01-01", "to": "2019-12-31"}, {"permit": "B", "from": "2019-01-01", "to": "not a date"}])
    line = refused(1, "layers", "add", "authorization", str(authorization), "--name", "ASV", "--source", "SEMAS", "--as-of", "2024-01-01",
                   "--map", "id=permit", "--map", "valid_from=from", "--map", "valid_to=to", "--db", zones_only)
    assert line.startswith("error: ") and "asv.geojson" in line and "not a date" in line
    missing = refused(1, "layers", "add", "authorization", str(authorization), "--name", "ASV", "--source", "SEMAS", "--as-of", "2024-01-01",
                      "--map", "id=permit", "--db", zones_only)
    assert "valid_from" in missing
    assert "bogus" in refused(2, "layers", "add", "bogus", str(authorization), "--name", "X", "--source", "S", "--as-of", "2024-01-01", "--db", zones_only)
    assert json.loads(ok("layers", "list", "--format", "json", "--db", zones_only)) == []


@pytest.fixture
def computed_store(case_store) -> str:
    ok("evidence", "compute", "--db", case_store)
    return case_store


def test_evidence_show_gives_the_document_and_the_provenance(computed_store):
    with stores.open(computed_store, read_only=True) as store:
        ids = zone_ids(store)
    document = json.loads(ok("evidence", "show", str(ids["half_in_pa"]), "--format", "json", "--db", computed_store))
    (finding,) = document.pop("findings")
    assert document == {"zone_id": ids["half_in_pa"], "classification": "legal", "suggested": "illegal", "rules_version": "1"}
    x3 = cell(3).bounds[0] + 0.005
    assert finding["overlap_ha"] == pytest.approx(hectares(shapely.box(x3, *cell(3).bounds[1:])), abs=0.01)
    assert {k: finding[k] for k in ("layer", "kind", "source", "as_of", "feature_id", "valid_at_zone_year")} == {
        "layer": "UCs", "kind": "protected_area", "source": "UCs source", "as_of": "2024-06-30", "feature_id": "UC-half", "valid_at_zone_year": True}
    table = ok("evidence", "show", str(ids["embargo_later"]), "--db", computed_store)
    assert "suggested illegal (inside an embargoed area; rules 1)" in table and "'Embargos <IBAMA>'" in table and "NOT in force" in table
    assert refused(1, "evidence", "show", "99999", "--db", computed_store) == f"error: no zone 99999 in {computed_store}"


def test_evidence_compute_again_has_nothing_to_do_and_status_says_so(computed_store):
    assert "evidence is up to date" in ok("evidence", "compute", "--db", computed_store)
    status = json.loads(ok("evidence", "status", "--format", "json", "--db", computed_store))
    assert (status["up_to_date"], status["rules_version"], status["layers_to_measure"]) == (True, "1", [])


def test_changed_rules_under_the_same_version_are_refused(computed_store, tmp_path):
    from forestguard.evidence.rules import load_rules

    text = Path(load_rules().path).read_text().replace('min_share = 0.95', 'min_share = 0.85')
    changed = tmp_path / "rules.toml"
    changed.write_text(text)
    assert "give them a new `version`" in refused(1, "evidence", "compute", "--rules", str(changed), "--db", computed_store)
    changed.write_text(text.replace('version = "1"', 'version = "1b"'))
    assert "every suggestion evaluated again" in ok("evidence", "compute", "--rules", str(changed), "--db", computed_store)
    with stores.open(computed_store, read_only=True) as store:
        ids = zone_ids(store)
        partial = store.zone_evidence(ids["auth_partial"])  # 90 % covered: legal under the looser rule
    assert (partial.suggested, partial.rules_version) == ("legal", "1b")
    runs = json.loads(ok("evidence", "runs", "--format", "json", "--db", computed_store))
    assert [(r["rules_version"], r["rules_sha256"]) for r in runs] == [("1b", load_rules(changed).sha256), ("1", load_rules().sha256)]
    assert (runs[1]["zones_measured"], runs[0]["zones_measured"], runs[0]["findings_written"]) == (10, 0, 0)
    assert set(runs[1]["layers"]) == {"ASV", "UCs", "CAR", "Embargos <IBAMA>"}


def test_apply_only_fills_unclassified_zones_and_records_it(computed_store):
    assert "--only-unclassified" in refused(2, "evidence", "apply", "--db", computed_store)
    assert "would classify 2 unclassified zone(s)" in ok("evidence", "apply", "--only-unclassified", "--dry-run", "--db", computed_store)
    assert json.loads(ok("evidence", "applied", "--format", "json", "--db", computed_store)) == []
    ok("evidence", "apply", "--only-unclassified", "--db", computed_store)
    with stores.open(computed_store, read_only=True) as store:
        ids = zone_ids(store)
        classes = {name: store.zone_evidence(i).classification for name, i in ids.items()}
    assert (classes["auth_valid"], classes["embargo_later"]) == ("legal", "illegal")
    assert (classes["half_in_pa"], classes["touches_pa"], classes["nothing"]) == ("legal", "illegal", None)  # never overwritten
    applied = json.loads(ok("evidence", "applied", "--format", "json", "--db", computed_store))
    assert sorted((a["zone_id"], a["previous"], a["classification"], a["rules_version"]) for a in applied) == sorted(
        [(ids["auth_valid"], None, "legal", "1"), (ids["embargo_later"], None, "illegal", "1")])


def test_statistics_group_by_suggested_and_filter_by_a_layer_kind(computed_store):
    rows = json.loads(ok("stats", "--by", "suggested", "--format", "json", "--db", computed_store))["rows"]
    assert {r["suggested"]: r["zones"] for r in rows} == {"illegal": 2, "legal": 1, "undetermined": 7}
    inside = json.loads(ok("stats", "--by", "classification", "--overlaps", "protected_area", "--overlaps", "embargo", "--format", "json",
                           "--db", computed_store))["rows"]
    assert {r["classification"]: r["zones"] for r in inside} == {"legal": 1, None: 2}  # half_in_pa; pa_created_later, embargo_later
    assert "unknown layer kind 'bogus'" in refused(2, "stats", "--overlaps", "bogus", "--db", computed_store)


def test_plots_risk_as_json_and_csv(computed_store, tmp_path):
    plot = cell(3).buffer(0.001, join_style="mitre")
    plots = write_geojson(tmp_path / "plots.geojson", [plot, cell(9), shapely.box(-60, -10, -59.99, -9.99)],
                          [{"pid": "P<3>"}, {"pid": "P9"}, {"pid": "far"}])
    document = json.loads(ok("evidence", "plots", str(plots), "--id", "pid", "--cutoff", "2020-12-31", "--format", "json", "--db", computed_store))
    assert (document["cutoff"], document["rules_version"]) == ("2020-12-31", "1")
    by_id = {p["plot_id"]: p for p in document["plots"]}
    x3 = cell(3).bounds[0] + 0.005
    assert by_id["P<3>"]["overlaps"]["protected_area"] == pytest.approx(hectares(shapely.intersection(plot, shapely.box(x3, -6, x3 + 0.03, 0))), abs=0.01)
    assert (by_id["P<3>"]["verdict"], by_id["P<3>"]["cleared_after_cutoff_zones"]) == ("high", 0)  # its zone is of 2020
    assert by_id["P<3>"]["reasons"][0].endswith("ha inside protected areas (UCs: UC-half)")
    assert (by_id["P9"]["verdict"], by_id["P9"]["cleared_after_cutoff_zones"]) == ("high", 1)
    assert by_id["P9"]["cleared_after_cutoff_ha"] == pytest.approx(hectares(cell(9)), abs=0.01)
    assert by_id["far"]["verdict"] == "more_info_needed" and any("no indigenous_land layer" in r for r in by_id["far"]["reasons"])
    lines = ok("evidence", "plots", str(plots), "--id", "pid", "--cutoff", "2020-12-31", "--db", computed_store).splitlines()
    assert lines[0].split(",")[:3] == ["plot_id", "cleared_after_cutoff_ha", "cleared_after_cutoff_zones"] and len(lines) == 4
    assert "--cutoff" in refused(1, "evidence", "plots", str(plots), "--id", "pid", "--cutoff", "last year", "--db", computed_store)


def test_the_demo_shows_evidence_out_of_the_box(tmp_path):
    db = str(tmp_path / "demo.duckdb")
    out = ok("demo", "--db", db, "--zones", "2000", "--seed", "3")
    assert "synthetic reference features added" in out.splitlines()[-1]
    layers = json.loads(ok("layers", "list", "--format", "json", "--db", db))
    assert sorted(x["kind"] for x in layers) == sorted(["protected_area", "indigenous_land", "property", "authorization", "embargo"])
    assert {x["source"] for x in layers} == {"ForestGuard demo (synthetic)"}
    rows = json.loads(ok("stats", "--by", "suggested", "--format", "json", "--db", db))["rows"]
    by = {r["suggested"]: r["zones"] for r in rows}
    assert sum(by.values()) == 2000 and by.get("illegal", 0) > 0 and by.get("legal", 0) > 0
    assert json.loads(ok("evidence", "status", "--format", "json", "--db", db))["up_to_date"] is True
