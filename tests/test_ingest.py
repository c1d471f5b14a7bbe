"""ingest(): all or nothing, --skip-invalid, empty input, and what reaches the store."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from shapely.geometry import shape

from forestguard import stores
from forestguard.errors import InputError, UserError
from forestguard.ingest import IngestRejected, ingest
from forestguard.sources import ColumnMapping

from .hazards.files import GOOD, collection, dumps, feature, square


def write(path: Path, *features: dict) -> Path:
    path.write_bytes(dumps(collection(*features)))
    return path


def good(i: int = 0, **changes) -> dict:
    return feature({**GOOD, **changes}, square(10 + i))


def state(url: str) -> tuple[int, int]:
    with stores.open(url, read_only=True) as store:
        return store.count(), store.data_version()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = str(tmp_path / "store.duckdb")
    ingest([write(tmp_path / "seed.geojson", good(0), good(1))], url)
    assert state(url) == (2, 1)
    return url


def test_a_bad_record_in_the_last_file_rejects_every_file(tmp_path: Path, store_url: str) -> None:
    files = [write(tmp_path / "a.geojson", good(5), good(6)), write(tmp_path / "b.geojson", good(2)), write(tmp_path / "c.geojson", good(3), good(4, year=1800))]
    with pytest.raises(IngestRejected) as caught:
        ingest(files, store_url)
    assert [(r.file, r.feature, r.field) for r in caught.value.rejects] == [(str(files[2]), 1, "year")]
    assert state(store_url) == (2, 1)
    assert [line.split(":")[0] for line in caught.value.column_lines] == [str(f) for f in files]


def test_an_unreadable_file_after_good_ones_writes_nothing(tmp_path: Path, store_url: str) -> None:
    bad = tmp_path / "z.geojson"
    bad.write_bytes(b'{"type": "FeatureCollection", "features": [')
    with pytest.raises(InputError):
        ingest([write(tmp_path / "a.geojson", good(0)), bad], store_url)
    assert state(store_url) == (2, 1)


def test_a_rejected_ingest_does_not_create_the_store(tmp_path: Path) -> None:
    url = tmp_path / "new" / "zones.duckdb"
    with pytest.raises(IngestRejected):
        ingest([write(tmp_path / "a.geojson", good(0, country=""))], str(url))
    assert not url.exists() and not url.parent.exists()


def test_a_store_url_nobody_can_open_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot tell which store"):
        ingest([tmp_path / "missing.geojson"], str(tmp_path / "zones.txt"))


def test_skip_invalid_loads_the_rest_and_writes_the_rejects(tmp_path: Path, store_url: str) -> None:
    rejects = tmp_path / "out" / "rejects.csv"
    source = write(tmp_path / "a.geojson", good(0), good(1, confidence=3), good(2), good(3, classification="maybe", year="x"))
    result = ingest([source], store_url, skip_invalid=rejects)
    assert (result.read, result.loaded, result.data_version) == (4, 2, 2)
    assert state(store_url) == (4, 2)
    with rejects.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "feature", "field", "reason"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [(str(source), "1", "confidence"), (str(source), "3", "classification, year")]
    assert "outside 0..1" in rows[1][3]


def test_skip_invalid_without_rejects_still_replaces_an_old_rejects_file(tmp_path: Path, store_url: str) -> None:
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("stale\n")
    ingest([write(tmp_path / "a.geojson", good(0))], store_url, skip_invalid=rejects)
    assert rejects.read_text().splitlines() == ["file,feature,field,reason"]


def test_skip_invalid_when_nothing_is_valid_writes_nothing_to_the_store(tmp_path: Path, store_url: str) -> None:
    result = ingest([write(tmp_path / "a.geojson", good(0, year=None))], store_url, skip_invalid=tmp_path / "r.csv")
    assert result.loaded == 0 and state(store_url) == (2, 1)


def test_rejects_file_problems(tmp_path: Path, store_url: str) -> None:
    source = write(tmp_path / "a.geojson", good(0), good(1, year=1))
    with pytest.raises(UserError, match="would overwrite an input"):
        ingest([source], store_url, skip_invalid=source)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match="cannot write the rejects file"):
        ingest([source], store_url, skip_invalid=tmp_path / "dir.csv")
    assert state(store_url) == (2, 1)
    assert json.loads(source.read_bytes())["features"][1]["properties"]["year"] == 1


def test_the_same_file_twice_is_refused(tmp_path: Path, store_url: str) -> None:
    source = write(tmp_path / "a.geojson", good(0))
    with pytest.raises(UserError, match="given twice"):
        ingest([source, tmp_path / "." / "a.geojson"], store_url)
    assert state(store_url) == (2, 1)


def test_empty_input_loads_nothing_and_creates_nothing(tmp_path: Path) -> None:
    url = tmp_path / "zones.duckdb"
    result = ingest([write(tmp_path / "a.geojson")], str(url))
    assert (result.read, result.loaded) == (0, 0) and not url.exists()


def test_what_reaches_the_store_is_what_was_given(tmp_path: Path) -> None:
    hostile = {
        "country": "'); DROP TABLE deforestation_zones; --",
        "region": "<script>alert(1)</script> & \"quotes\" 'single'",
        "source": "🌳 Sentinel-2 ¯\\_(ツ)_/¯",
        "year": 2016,
        "classification": "LÉGALE",
        "confidence": 0.37,
        "verified": "oui",
        "area_ha": 12.345,
    }
    url = str(tmp_path / "z.duckdb")
    result = ingest([write(tmp_path / "a.geojson", feature(hostile, square(20)))], url)
    assert result.loaded == 1 and result.engine == "duckdb"
    with stores.open(url, read_only=True) as store:
        row = store.zones().iloc[0]
    assert (row.country, row.region, row.source, row.year) == (hostile["country"], hostile["region"], hostile["source"], 2016)
    assert row.classification == "Légale" and row.verified
    assert Decimal(str(row.confidence)) == Decimal("0.37") and Decimal(str(row.area_ha)) == Decimal("12.35")
    assert row.geometry.equals(shape(square(20)))


def test_mapping_and_constants_reach_the_store(tmp_path: Path) -> None:
    source = write(tmp_path / "a.geojson", feature({"PAYS": "Gabon", "annee": "2018"}, square(11)))
    url = str(tmp_path / "z.duckdb")
    result = ingest([source], url, mapping=ColumnMapping.parse(("country=PAYS", "year=annee"), ("source=GLAD", "verified=true")))
    assert result.column_lines == [f"{source}: using country<-PAYS, year<-annee, source=(--set GLAD), verified=(--set true)"]
    with stores.open(url, read_only=True) as store:
        row = store.zones().iloc[0]
    assert (row.country, row.year, row.source, bool(row.verified)) == ("Gabon", 2018, "GLAD", True)


def test_multipolygon_parts_become_zones_with_the_given_area_shared(tmp_path: Path) -> None:
    multi = {"type": "MultiPolygon", "coordinates": [square(10)["coordinates"], square(11)["coordinates"], square(12)["coordinates"]]}
    url = str(tmp_path / "z.duckdb")
    ingest([write(tmp_path / "a.geojson", feature({**GOOD, "area_ha": 10}, multi))], url)
    with stores.open(url) as store:
        total = store.aggregate(stores.ZoneFilter(), [])["area_ha"].iat[0]
        assert store.count() == 3
    assert total == Decimal("10.00")


def test_at_most_twenty_reject_lines_then_a_count() -> None:
    from forestguard.validation import Reject

    lines = IngestRejected([Reject("f", i, "year", "is required") for i in range(25)]).lines()
    assert lines[:20] == [f"f: feature {i}: year: is required" for i in range(20)]
    assert "5 more" in lines[20] and "25 in all" in lines[20]
    assert lines[21].startswith("nothing was loaded") and len(lines) == 22


# -- read_ahead -----------------------------------------------------------------------------


def test_read_ahead_keeps_order_and_runs_the_producer_in_another_thread() -> None:
    import threading

    from forestguard.streams import read_ahead

    made_in = []

    def items():
        for i in range(5):
            made_in.append(threading.current_thread().name)
            yield i

    assert list(read_ahead(items())) == [0, 1, 2, 3, 4]
    assert set(made_in) == {"forestguard-read-ahead"}


def test_read_ahead_hands_the_producers_error_to_the_consumer() -> None:
    from forestguard.streams import read_ahead

    def items():
        yield 1
        raise KeyError("bad record")

    got = []
    with pytest.raises(KeyError, match="bad record"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1]


def test_read_ahead_stops_the_producer_when_the_consumer_stops() -> None:
    import threading

    from forestguard.streams import read_ahead

    made = []

    def items():
        for i in range(1000):
            made.append(i)
            yield i

    stream = read_ahead(items(), depth=1)
    assert next(stream) == 0
    stream.close()  # the consumer gives up (e.g. the server refused the COPY)
    assert len(made) < 10
    assert not any(t.name == "forestguard-read-ahead" for t in threading.enumerate())


# -- big files are streamed -------------------------------------------------------------------


def _gpkg(path: Path, records: int, bad: tuple[int, ...] = (), crs: int = 4326) -> Path:
    import geopandas as gpd

    rows = [{**GOOD, "year": 1800 if i in bad else GOOD["year"], "region": f"r{i}"} for i in range(records)]
    frame = gpd.GeoDataFrame(rows, geometry=[shape(square(10 + i % 50)) for i in range(records)], crs=4326)
    frame.to_crs(crs).to_file(path, layer="zones", engine="pyogrio")
    return path


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> int:
    """Every GDAL file streams, 40 records a batch: the streamed path on small files."""
    import forestguard.ingest
    import forestguard.sources

    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(forestguard.ingest, "BATCH_ROWS", 40)
    return 40


def test_a_streamed_file_loads_what_a_whole_read_loads(tmp_path: Path, streaming: int) -> None:
    from forestguard.sources import SOURCE_WKB, open_zones_file, read_zones_file

    path = _gpkg(tmp_path / "zones.gpkg", 130, crs=3857)  # reprojected batch by batch
    source = open_zones_file(path)
    assert source.frame is None and source.features == 130
    batches = list(source.batches(streaming))
    assert [len(b) for b in batches] == [40, 40, 40, 10]
    whole = read_zones_file(path)
    streamed = __import__("pandas").concat(batches, ignore_index=True)
    assert SOURCE_WKB not in streamed  # reprojected: the file's bytes are not the store's
    assert streamed.drop(columns="geometry").equals(whole.drop(columns="geometry"))
    assert streamed.crs.to_epsg() == 4326 and streamed.geometry.geom_equals_exact(whole.geometry, 1e-9).all()
    url = str(tmp_path / "store.duckdb")
    result = ingest([path], url)
    assert result.read == result.loaded == 130 and state(url) == (130, 1)


def test_rejects_in_the_first_and_last_streamed_batch_are_numbered_in_the_file(tmp_path: Path, streaming: int) -> None:
    path = _gpkg(tmp_path / "zones.gpkg", 130, bad=(3, 125))
    url = str(tmp_path / "store.duckdb")
    with pytest.raises(IngestRejected) as caught:
        ingest([path], url)
    assert [(r.feature, r.field) for r in caught.value.rejects] == [(3, "year"), (125, "year")]
    assert not Path(url).exists()


def test_a_reject_in_the_last_streamed_batch_leaves_an_existing_store_as_it_was(tmp_path: Path, streaming: int) -> None:
    """The embedded store takes batches while later ones are checked: the transaction rolls back, nothing stays."""
    url = str(tmp_path / "store.duckdb")
    ingest([_gpkg(tmp_path / "first.gpkg", 30)], url)
    before = state(url)
    with pytest.raises(IngestRejected):
        ingest([_gpkg(tmp_path / "zones.gpkg", 130, bad=(125,))], url)
    assert state(url) == before == (30, 1)


@pytest.mark.parametrize("crs", [4326, 3857])
def test_a_big_geoparquet_file_streams_like_a_whole_read(tmp_path: Path, streaming: int, crs: int) -> None:
    import geopandas as gpd
    import pandas as pd

    from forestguard.sources import SOURCE_WKB, open_zones_file, read_zones_file

    path = tmp_path / "zones.parquet"
    gpd.read_file(_gpkg(tmp_path / "zones.gpkg", 130)).to_crs(crs).to_parquet(path, row_group_size=50)
    source = open_zones_file(path)
    assert source.frame is None and source.features == 130
    batches = list(source.batches(streaming))
    assert [len(b) for b in batches] == [40, 40, 40, 10]
    streamed, whole = pd.concat(batches, ignore_index=True), read_zones_file(path)
    assert (SOURCE_WKB in streamed) == (crs == 4326)  # the file's own bytes only where nothing was reprojected
    assert streamed.drop(columns=["geometry", SOURCE_WKB], errors="ignore").equals(whole.drop(columns="geometry"))
    assert streamed.crs.to_epsg() == 4326 and streamed.geometry.geom_equals_exact(whole.geometry, 1e-6).all()
    url = str(tmp_path / "store.duckdb")
    assert ingest([path], url).loaded == 130 and state(url) == (130, 1)


def test_a_streamed_file_without_a_mapped_column_fails_before_reading_on(tmp_path: Path, streaming: int) -> None:
    path = _gpkg(tmp_path / "zones.gpkg", 50)
    with pytest.raises(InputError, match="not in the file"):
        ingest([path], str(tmp_path / "store.duckdb"), mapping=ColumnMapping.parse(("country=NAME",)))


def test_a_streamed_file_in_the_stores_crs_is_stored_from_its_own_wkb(tmp_path: Path, streaming: int) -> None:
    import geoarrow.pyarrow  # noqa: F401 - registered GeoArrow types make GDAL's WKB column an extension array (as in a server)
    import geopandas as gpd

    from forestguard.sources import SOURCE_WKB, open_zones_file

    path = _gpkg(tmp_path / "zones.gpkg", 90)
    first = next(open_zones_file(path).batches(streaming))
    assert first[SOURCE_WKB].notna().all()
    url = str(tmp_path / "store.duckdb")
    ingest([path], url)
    with stores.open(url, read_only=True) as store:
        stored = store.zones().sort_values("region", key=lambda s: s.str[1:].astype(int)).reset_index(drop=True)
    written = gpd.read_file(path).sort_values("region", key=lambda s: s.str[1:].astype(int)).reset_index(drop=True)
    assert stored.geometry.geom_equals_exact(written.geometry, 0).all()
