"""Evidence on both engines and in a snapshot: the same findings to the last bit, a shapely + pyproj reference, incremental runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from forestguard import snapshots, stores
from forestguard.demo import DemoSpec, demo_zones
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.layers import read_layer
from forestguard.evidence.rules import load_rules
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

from .conftest import case_layer_files, demo_layer_files

pytestmark = pytest.mark.postgis

KEY = ["zone_id", "layer", "feature_id"]
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def zones():
    return demo_zones(DemoSpec(zones=1_500, seed=11))


def _add(store, files: dict, names=None) -> None:
    for name, (kind, path, maps) in files.items():
        if names is None or name in names:
            read = read_layer(kind, path, name=name, source=f"{name} org", as_of="2024-01-31", maps=maps)
            store.add_layer(read.layer, read.features)


@pytest.fixture(scope="module")
def engines(zones, postgis_admin_url, postgis_template, tmp_path_factory):
    """The demo zones and layers over them in DuckDB and PostGIS, evidence computed in each."""
    from tests.fixtures.postgis import create_database, drop_database

    folder = Path(tmp_path_factory.mktemp("evidence-engines"))
    files = demo_layer_files(folder, zones)
    duck = str(folder / "zones.duckdb")
    pg = create_database(postgis_admin_url, template=postgis_template)
    reports = []
    for url in (duck, pg):
        with stores.open(url, create=True) as store:
            store.insert(zones)
            _add(store, files)
            reports.append(compute_evidence(store, load_rules()))
    try:
        yield {"duckdb": duck, "postgis": pg, "folder": folder, "reports": reports}
    finally:
        drop_database(postgis_admin_url, pg)


def _findings(url: str) -> pd.DataFrame:
    with stores.open(url, read_only=True) as store:
        return store.findings_of().sort_values(KEY).reset_index(drop=True)


def test_duckdb_and_postgis_hold_the_same_findings_to_the_last_bit(engines):
    duck, pg = _findings(engines["duckdb"]), _findings(engines["postgis"])
    assert len(duck) > 50 and set(duck["kind"]) == {"protected_area", "property"}
    pd.testing.assert_frame_equal(duck, pg, check_exact=True, check_dtype=False)
    assert [r.findings_written for r in engines["reports"]] == [len(duck)] * 2


def test_overlaps_agree_with_shapely_and_pyproj_within_a_hundredth_of_a_hectare(engines, zones):
    with stores.open(engines["duckdb"], read_only=True) as store:
        ids = store.zones_arrow(columns=["id", "geometry"])
        features = store.layer_features()
    zone_shape = dict(zip(ids.column("id").to_pylist(), shapely.from_wkb(ids.column("geometry").to_pylist())))
    feature_shape = {(l, f): g for l, f, g in zip(features.column("layer").to_pylist(), features.column("feature_id").to_pylist(),
                                                  shapely.from_wkb(features.column("geometry").to_pylist()))}
    # The reference: every pair whose polygons share area, clipped in lon/lat, measured on the ellipsoid.
    tree = shapely.STRtree(list(feature_shape.values()))
    keys = list(feature_shape)
    expected = {}
    for zone_id, shape in zone_shape.items():
        for j in tree.query(shape, predicate="intersects"):
            cut = shapely.intersection(shape, tree.geometries[j])
            hectares = abs(GEOD.geometry_area_perimeter(cut)[0]) / 10_000 if cut.area > 0 else 0.0
            if hectares > 0:
                expected[(zone_id, *keys[j])] = (hectares, hectares / (abs(GEOD.geometry_area_perimeter(shape)[0]) / 10_000))
    found = _findings(engines["duckdb"])
    got = {(z, l, f): (h, s) for z, l, f, h, s in found[[*KEY, "overlap_ha", "overlap_share"]].itertuples(index=False)}
    # Pairs that only touch (zero area) are no finding; pairs below a thousandth of a hectare may round either way.
    assert {k for k, v in expected.items() if v[0] > 1e-3} <= set(got) <= set(expected)
    assert max(abs(got[k][0] - expected[k][0]) for k in got) < 0.01
    assert max(abs(got[k][1] - expected[k][1]) for k in got) < 1e-4


def test_statistics_by_suggested_and_by_overlapping_a_kind_agree_between_engines(engines):
    found = _findings(engines["duckdb"])
    results = {}
    for engine in ("duckdb", "postgis"):
        with stores.open(engines[engine], read_only=True) as store:
            by = statistics(store, ZoneFilter(), ["suggested"]).rows
            inside = statistics(store, ZoneFilter(overlaps=("protected_area",)), ["classification"]).rows
            results[engine] = (by, inside)
    assert results["duckdb"] == results["postgis"]
    by, inside = results["duckdb"]
    assert {r["suggested"] for r in by} <= {"legal", "illegal", "undetermined"} and sum(r["zones"] for r in by) == 1_500
    assert sum(r["zones"] for r in inside) == found.loc[found["kind"] == "protected_area", "zone_id"].nunique() > 0


def test_a_snapshot_carries_the_layers_and_the_evidence(engines, tmp_path):
    with stores.open(engines["duckdb"]) as store:
        manifest = snapshots.create(store, tmp_path / "snaps")
        ids = list(store.findings_of()["zone_id"].unique()[:20])
        before = [e.to_dict() for e in store.zones_evidence(ids)]
        layers = [(layer.name, layer.kind, layer.source, layer.as_of, layer.sha256, layer.features) for layer in store.reference_layers()]
        by = statistics(store, ZoneFilter(), ["suggested"]).rows
        runs = store.evidence_runs()
    assert manifest.evidence and len(runs) == 1
    with stores.open(str(tmp_path / "snaps" / manifest.id), read_only=True) as snap:
        assert [(layer.name, layer.kind, layer.source, layer.as_of, layer.sha256, layer.features) for layer in snap.reference_layers()] == layers
        assert [e.to_dict() for e in snap.zones_evidence(ids)] == before
        assert statistics(snap, ZoneFilter(), ["suggested"]).rows == by
        assert snap.evidence_runs() == runs


@pytest.fixture(params=["duckdb", "postgis"])
def small_store(request, zones, tmp_path):
    """A fresh store of 400 demo zones on each engine."""
    if request.param == "duckdb":
        url = str(tmp_path / "small.duckdb")
    else:
        from tests.fixtures.postgis import create_database

        url = create_database(request.getfixturevalue("postgis_admin_url"), template=request.getfixturevalue("postgis_template"))
    with stores.open(url, create=True) as store:
        store.insert(zones.iloc[:400])
    yield url
    if request.param == "postgis":
        from tests.fixtures.postgis import drop_database

        drop_database(request.getfixturevalue("postgis_admin_url"), url)


def test_a_rerun_after_adding_one_layer_measures_only_that_layer_and_matches_a_full_run(small_store, zones, tmp_path):
    files = demo_layer_files(tmp_path, zones.iloc[:400], seed=5)
    rules = load_rules()
    with stores.open(small_store) as store:
        _add(store, files, names={"PA demo"})
        first = compute_evidence(store, rules)
        assert (first.zones_recomputed, first.zones_read) == (400, 400)
        again = compute_evidence(store, rules)
        assert again.up_to_date and again.zones_read == 0

        _add(store, files, names={"CAR demo"})
        added = compute_evidence(store, rules)
        assert (added.zones_recomputed, added.layers_added, added.layers_dropped) == (0, ["CAR demo"], [])
        assert 0 < added.zones_read < 400  # only zones the new layer's box may meet
        incremental = store.findings_of().sort_values(KEY).reset_index(drop=True)
        suggested = statistics(store, ZoneFilter(), ["suggested"]).rows
        state = store.evidence_state()
        assert (state.rules_version, state.rules_sha256, set(state.layers)) == (rules.version, rules.sha256, {"PA demo", "CAR demo"})

        full = compute_evidence(store, rules, full=True)
        assert full.zones_recomputed == 400
        pd.testing.assert_frame_equal(store.findings_of().sort_values(KEY).reset_index(drop=True), incremental, check_exact=True)
        assert statistics(store, ZoneFilter(), ["suggested"]).rows == suggested

        store.remove_layer("PA demo")
        removed = compute_evidence(store, rules)
        assert (removed.zones_recomputed, removed.layers_dropped) == (0, ["PA demo"])
        assert set(store.findings_of()["layer"]) == {"CAR demo"}
        runs = store.evidence_runs()  # every run that wrote, newest first (the up-to-date one wrote nothing)
        assert [(r.zones_measured, sorted(r.layers), r.rules_sha256) for r in runs] == [
            (0, ["CAR demo"], rules.sha256), (400, ["CAR demo", "PA demo"], rules.sha256), (0, ["CAR demo", "PA demo"], rules.sha256),
            (400, ["PA demo"], rules.sha256)]
        assert runs[1].findings_written == full.findings_written and runs[0].computed_at.tzinfo is not None


def test_case_layers_give_the_same_suggestions_on_postgis(zones, postgis_admin_url, postgis_template, tmp_path, case_store):
    from tests.fixtures.postgis import create_database, drop_database

    from .conftest import case_zones, zone_ids

    pg = create_database(postgis_admin_url, template=postgis_template)
    try:
        results = {}
        for url in (case_store, pg):
            with stores.open(url, create=True) as store:
                if url == pg:
                    store.insert(case_zones())
                    _add(store, case_layer_files(tmp_path))
                compute_evidence(store, load_rules())
                ids = zone_ids(store)
                results[url] = {n: (e.suggested, e.rule, [(f.layer, f.feature_id, f.valid_at_zone_year, f.overlap_ha) for f in e.findings])
                                for n, e in ((n, store.zone_evidence(i)) for n, i in ids.items())}
        assert results[case_store] == results[pg]
        assert np.sum([s == "illegal" for s, _, _ in results[pg].values()]) == 2  # half_in_pa, embargo_later
    finally:
        drop_database(postgis_admin_url, pg)
