"""Evidence filters on the Dask engine: grouping by ``suggested`` and "overlaps a layer kind", held against the embedded engine.

A Dask task reads one partition of zones; the zones' evidence (suggestions, findings) lives
in the snapshot's own files. Every answer here must equal the embedded snapshot engine's
on the same snapshot (exact decimals: to the cent), for each layer kind, alone and with
country and year filters; a snapshot without evidence is refused in one line, as embedded.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from forestguard import snapshots, stores
from forestguard.cli import main
from forestguard.distributed import open_store
from forestguard.evidence.demo import DemoLayersSpec, add_demo_evidence
from forestguard.evidence.layers import read_layer
from forestguard.render.maps import store_map
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter
from forestguard.stores.evidence_records import KINDS
from tests.evidence.conftest import demo_layer_files
from tests.fixtures.s3 import S3Env
from tests.fixtures.services import make_store

pytestmark = [pytest.mark.s3, pytest.mark.slow]

#: Small synthetic layers of every kind (the demo's), on top of layers placed over the zones themselves.
SPEC = DemoLayersSpec(protected_areas=40, indigenous_lands=20, properties=300, authorizations=80, embargoes=40)


@pytest.fixture(scope="module")
def evidence_snapshot(demo_small, s3_server, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A snapshot (on S3, 5 partitions) of the demo zones with layers of every kind and evidence computed; and one without evidence."""
    folder = Path(tmp_path_factory.mktemp("dask-evidence"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env().items():
            patch.setenv(name, value)
        patch.setenv("FORESTGUARD_DATA_DIR", str(folder / "data"))
        yield _snapshots(demo_small, S3Env(s3_server, f"t-{uuid.uuid4().hex[:12]}"), folder)


def _snapshots(demo_small, s3: S3Env, folder: Path) -> tuple[str, str]:
    plain = make_store(folder / "plain.duckdb", demo_small)
    with stores.open(plain) as store:
        bare = snapshots.create(store, s3.url("evidence-bare"), partition_rows=400)
    url = make_store(folder / "zones.duckdb", demo_small)
    with stores.open(url) as store:
        zones = store.zones(columns=["id", "geometry"])
        for name, (kind, path, maps) in demo_layer_files(folder, zones).items():
            read = read_layer(kind, path, name=name, source=f"{name} org", as_of="2024-01-31", maps=maps)
            store.add_layer(read.layer, read.features)
        add_demo_evidence(store, SPEC)  # the demo's layers (every kind) added, evidence computed
        manifest = snapshots.create(store, s3.url("evidence"), partition_rows=400)
    assert manifest.evidence and len(manifest.files) == 5 and not bare.evidence
    return f"snapshot:{manifest.location}", f"snapshot:{bare.location}"


def _filters() -> list[ZoneFilter]:
    """Each kind alone, all kinds at once, and kinds with country and year filters."""
    found = [ZoneFilter(overlaps=(kind,)) for kind in KINDS]
    return [*found, ZoneFilter(overlaps=KINDS), ZoneFilter(overlaps=("protected_area", "property"), countries=("Brazil",)),
            ZoneFilter(overlaps=("authorization", "embargo"), year_from=2018, year_to=2022),
            ZoneFilter(countries=("Brazil", "Peru"), year_from=2019)]


def test_statistics_by_suggested_and_overlapping_each_kind_equal_the_embedded_engine(evidence_snapshot, s3, dask_s3_cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    url, _ = evidence_snapshot
    with open_store(url, dask_s3_cluster.address) as dask_store, stores.open(url) as embedded:
        overlapping = {kind: embedded.count(ZoneFilter(overlaps=(kind,))) for kind in KINDS}
        assert all(n > 0 for n in overlapping.values()), overlapping  # every kind has zones: a filter answering nothing would show
        for where in [ZoneFilter(), *_filters()]:
            for by in [("suggested",), ("classification",), ("country", "year", "suggested")]:
                assert statistics(dask_store, where, by).rows == statistics(embedded, where, by).rows, (where, by)
            assert dask_store.count(where) == embedded.count(where), where
        suggested = {r["suggested"] for r in statistics(dask_store, ZoneFilter(), ["suggested"]).rows}
        assert {"legal", "illegal", "undetermined"} <= suggested
        where = ZoneFilter(overlaps=("protected_area",), countries=("Brazil",))
        columns = ["id", "country", "year", "suggested"]
        assert dask_store.zones_arrow(where, columns).equals(embedded.zones_arrow(where, columns))
        assert dask_store.zones_arrow(ZoneFilter(), columns).equals(embedded.zones_arrow(ZoneFilter(), columns))


def test_a_map_of_the_zones_overlapping_a_kind_equals_the_embedded_engine(evidence_snapshot, s3, dask_s3_cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    url, _ = evidence_snapshot
    where = ZoneFilter(overlaps=("protected_area", "indigenous_land"))
    with open_store(url, dask_s3_cluster.address) as dask_store, stores.open(url) as embedded:
        zones = embedded.count(where)
        distributed = store_map(dask_store, where, 360, 180, measure="zones")
        expected = store_map(embedded, where, 360, 180, measure="zones")
    np.testing.assert_array_equal(distributed.values, expected.values)  # counts: exact in any order
    assert distributed.values.sum() == zones > 0


def test_cli_stats_by_suggested_and_overlaps_on_the_cluster(evidence_snapshot, s3, dask_s3_cluster, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    url, bare = evidence_snapshot
    runs = [["--by", "suggested"], ["--by", "suggested,year", "--country", "Brazil", "--from", "2019", "--to", "2024"],
            ["--by", "classification", "--overlaps", "protected_area", "--overlaps", "embargo"], ["--by", "suggested", "--overlaps", "property,authorization"]]
    for options in runs:
        outputs = {}
        for engine, extra in (("embedded", []), ("dask", ["--dask", dask_s3_cluster.address])):
            main(["stats", "--db", url, *options, "--format", "json", *extra])
            outputs[engine] = json.loads(capsys.readouterr().out)
        assert outputs["dask"]["rows"] == outputs["embedded"]["rows"] and outputs["dask"]["rows"], options
        assert outputs["dask"]["engine"] == "dask"
    # A snapshot without evidence: the same one-line refusal on both engines, before any task runs.
    errors = {}
    for engine, extra in (("embedded", []), ("dask", ["--dask", dask_s3_cluster.address])):
        with pytest.raises(SystemExit) as exit_info:
            main(["stats", "--db", bare, "--by", "suggested", *extra])
        assert exit_info.value.code == 1
        captured = capsys.readouterr()
        errors[engine] = captured.err.strip().splitlines()
        assert captured.out == ""
    assert len(errors["dask"]) == 1 and "no reference layers or evidence" in errors["dask"][0], errors
    assert errors["dask"] == errors["embedded"]


def test_an_evidence_dossier_on_the_cluster_equals_the_embedded_engine(evidence_snapshot, s3, dask_s3_cluster, tmp_path, monkeypatch) -> None:
    """Layers, state and zones' findings read here from the snapshot's evidence files; the dossier's statistics on the workers."""
    import shapely

    from forestguard.reports.evidence import evidence_summary

    monkeypatch.setenv("FORESTGUARD_DATA_DIR", str(tmp_path / "client-data"))
    url, bare = evidence_snapshot
    area = tmp_path / "amazon.geojson"
    area.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                "geometry": json.loads(shapely.to_geojson(shapely.box(-60.0, -10.0, -52.0, -3.0)))}]}))
    with open_store(url, dask_s3_cluster.address) as dask_store, stores.open(url) as embedded:
        assert dask_store.reference_layers() == embedded.reference_layers() and len(embedded.reference_layers()) == 7
        assert dask_store.evidence_state() == embedded.evidence_state() is not None
        assert dask_store.evidence_runs() == embedded.evidence_runs()
        assert dask_store.layer_features(["PA demo"]).equals(embedded.layer_features(["PA demo"]))
        found = embedded.findings_of()
        ids = [*found["zone_id"].unique()[:25].tolist(), 1, 2, 10_000_000]  # with findings, maybe without, and no such zone
        assert [e.to_dict() for e in dask_store.zones_evidence(ids)] == [e.to_dict() for e in embedded.zones_evidence(ids)]
        assert len(dask_store.zones_evidence(ids)) == len(ids) - 1
        pd_testing = pytest.importorskip("pandas.testing")
        pd_testing.assert_frame_equal(dask_store.findings_of().sort_values(["zone_id", "layer", "feature_id"], ignore_index=True),
                                      found.sort_values(["zone_id", "layer", "feature_id"], ignore_index=True))
        on_cluster, here = evidence_summary(dask_store, area=str(area)), evidence_summary(embedded, area=str(area))
    with open_store(bare, dask_s3_cluster.address) as dask_store, stores.open(bare) as embedded:  # no evidence: the zones, nothing suggested
        assert [e.to_dict() for e in dask_store.zones_evidence([3, 1, 10_000_000])] == [e.to_dict() for e in embedded.zones_evidence([3, 1, 10_000_000])]
        assert dask_store.reference_layers() == [] and dask_store.evidence_state() is None
    assert on_cluster.by_suggested.result.rows == here.by_suggested.result.rows and here.by_suggested.result.rows
    assert on_cluster.inside_restricted.result.rows == here.inside_restricted.result.rows
    pd_testing.assert_frame_equal(on_cluster.findings, here.findings)
    assert len(here.findings) > 0
