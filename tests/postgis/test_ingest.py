"""Writing to PostGIS: COPY round trip, all-or-nothing loads, the data version, concurrency."""

from __future__ import annotations

import subprocess
import threading
from decimal import Decimal

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from forestguard import stores
from forestguard.errors import ReadOnlyStore, UserError
from forestguard.ingest import IngestRejected, ingest
from forestguard.stores.postgis import PostGISStore
from forestguard.stores.postgis import load as loading
from forestguard.validation import validate
from tests.fixtures.services import wait_until

from .helpers import fingerprint, scalar

pytestmark = pytest.mark.postgis

COPY_WAITING_ON_VERSION = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE 'COPY deforestation_zones%'"
)


def awkward_zones() -> gpd.GeoDataFrame:
    """Values that break naive encoders: NULLs, empty text, quotes, newlines, non-ASCII, limits."""
    frame = gpd.GeoDataFrame(
        {
            "country": ["Côte d'Ivoire", 'Say "hi"', "Brasil\nnorte", "Ελλάδα", "x" * 100],
            "region": [None, "", "a,b;c\\d", "tab\there", "r" * 200],
            "classification": ["illégale", "LEGAL", None, "Illegale", "légale"],
            "area_ha": [0.01, 99_999_999.99, None, 1234.5, None],
            "year": [1970, 2024, 2001, 2015, 2020],
            "source": ["GLAD", None, "", "PRODES", "s" * 100],
            "confidence": [0.0, 1.0, None, 0.35, 0.999],
            "verified": [True, False, False, True, False],
        },
        geometry=[shapely.box(-5.5, 6.5, -5.4, 6.6), shapely.box(-50, -10, -49, -9), shapely.box(0, 0, 0.001, 0.001),
                  shapely.Polygon([(23, 38), (23.01, 38), (23, 38.01)]).buffer(0.001), shapely.box(10, 10, 10.5, 10.5)],
        crs=4326,
    )
    checked = validate(frame, file="awkward")
    assert not checked.rejects, checked.rejects
    zones = checked.zones
    zones["region"] = zones["region"].astype(object)
    zones.loc[1, "region"] = ""  # validation reads blank as missing; the encoder must still keep '' apart from NULL
    return zones


def read_back(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT country, region, classification, area_ha, year, source, confidence, verified, ST_AsBinary(geometry), ST_SRID(geometry) "
            "FROM deforestation_zones ORDER BY id"
        ).fetchall()
    return pd.DataFrame(rows, columns=["country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "wkb", "srid"])


def _texts(values: pd.Series) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values.astype(object)]


def test_copy_round_trip_keeps_every_value_exactly(zones_db):
    zones = awkward_zones()
    with PostGISStore(zones_db, create=True) as store:
        assert store.insert(zones) == len(zones)
    back = read_back(zones_db)
    for column in ("country", "region", "classification", "source"):
        assert _texts(back[column]) == _texts(zones[column]), column
    assert back["year"].tolist() == zones["year"].tolist()
    assert back["verified"].tolist() == zones["verified"].tolist()
    assert back["area_ha"].tolist() == [Decimal(f"{v:.2f}") for v in zones["area_ha"]]
    assert back["confidence"].tolist() == [None if np.isnan(v) else Decimal(f"{v:.2f}") for v in zones["confidence"]]
    assert back["wkb"].map(bytes).tolist() == list(shapely.to_wkb(zones.geometry.values, output_dimension=2))
    assert set(back["srid"]) == {4326}


def test_huge_polygons_cross_in_and_out_intact(zones_db, demo_small, monkeypatch):
    from forestguard.stores.postgis import transfer

    monkeypatch.setattr(transfer, "BYTES_PER_BLOCK", 1 << 20)  # several COPY blocks, one of them a single row
    # and on the way out one CSV row (16 MB of hex) larger than a CSV block
    angles = np.linspace(0, 2 * np.pi, 500_000, endpoint=False)
    circle = shapely.Polygon(np.column_stack([-55 + 0.5 * np.cos(angles), -10 + 0.5 * np.sin(angles)]))
    huge = gpd.GeoDataFrame({"country": ["Brazil"], "year": [2020]}, geometry=[circle], crs=4326)
    checked = validate(huge, file="huge")
    zones = pd.concat([demo_small.head(300), checked.zones, demo_small.iloc[300:600]], ignore_index=True)
    assert shapely.get_num_coordinates(checked.zones.geometry.values)[0] > 400_000  # 8 MB of WKB, 16 MB of hex
    with PostGISStore(zones_db, create=True) as store:
        store.insert(zones)
        back = store.zones_arrow(columns=["id", "geometry"])
    sent = shapely.to_wkb(zones.geometry.values, output_dimension=2)
    assert back.column("geometry").to_pylist() == [sent[i] for i in np.asarray(back.column("id")) - 1]


def test_a_rejected_file_leaves_the_table_exactly_as_it_was(zones_db, demo_small, tmp_path):
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(50))
    before = fingerprint(zones_db)
    bad = gpd.GeoDataFrame(
        {"country": ["Peru", "Peru"], "year": [2020, 2021]},
        geometry=[shapely.box(-75, -10, -74.9, -9.9), shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])],
        crs=4326,
    )
    path = tmp_path / "bad.geojson"
    bad.to_file(path)
    with pytest.raises(IngestRejected):
        ingest([path], db=zones_db)
    assert fingerprint(zones_db) == before


@pytest.mark.parametrize("bulk", [False, True], ids=["incremental", "bulk"])
def test_a_load_the_server_refuses_changes_nothing(zones_db, demo_small, bulk):
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(20))
    before = fingerprint(zones_db)
    broken = demo_small.iloc[20:400].copy()
    broken.iloc[-1, broken.columns.get_loc("classification")] = "Inconnue"  # past validation: the CHECK refuses it
    with PostGISStore(zones_db, bulk_min_rows=100 if bulk else 10**9) as store:
        with pytest.raises(UserError, match="nothing was loaded"):
            store.insert(broken)
    assert fingerprint(zones_db) == before, "rows, indexes and data version must be untouched"


def test_each_load_bumps_the_version_once_inside_its_transaction(zones_db, demo_small):
    with PostGISStore(zones_db, create=True) as store:
        assert store.data_version() == 0
        store.insert(demo_small.head(30))
        assert store.last_write_version == store.data_version() == 1
        store.insert(demo_small.iloc[30:60])
        assert store.last_write_version == store.data_version() == 2
        assert store.count() == 60


def test_a_bulk_load_rebuilds_the_same_indexes_and_gives_the_same_rows(zones_db, demo_small):
    empty, empty_oids = fingerprint(zones_db), index_oids(zones_db)
    with PostGISStore(zones_db, create=True, bulk_min_rows=100) as store:
        store.insert(demo_small)
    bulk, bulk_oids = fingerprint(zones_db), index_oids(zones_db)
    assert bulk.indexes == empty.indexes
    assert bulk_oids["deforestation_zones_pkey"] == empty_oids["deforestation_zones_pkey"], "the primary key stays"
    assert all(bulk_oids[name] != empty_oids[name] for name in bulk_oids if name.startswith("idx_")), "re-created"
    with PostGISStore(zones_db, bulk_min_rows=10**9) as store:
        store.insert(demo_small)
    both = fingerprint(zones_db)
    assert both.indexes == bulk.indexes and index_oids(zones_db) == bulk_oids and both.rows == 2 * len(demo_small)
    halves = scalar(
        zones_db,
        "SELECT count(*) FROM (SELECT country, region, classification, area_ha, year, source, confidence, verified, geometry::bytea "
        "FROM deforestation_zones WHERE id <= %s EXCEPT ALL SELECT country, region, classification, area_ha, year, source, "
        "confidence, verified, geometry::bytea FROM deforestation_zones WHERE id > %s) AS only_in_bulk",
        [len(demo_small), len(demo_small)],
    )
    assert halves == 0, "the bulk and the incremental path store the same zones"


def index_oids(url: str) -> dict[str, int]:
    with psycopg.connect(url) as con:
        return dict(con.execute("SELECT indexrelid::regclass::text, indexrelid::int FROM pg_index WHERE indrelid = 'deforestation_zones'::regclass"))


def _insert_in_thread(url: str, zones: gpd.GeoDataFrame, errors: list, **options) -> threading.Thread:
    def run() -> None:
        try:
            with PostGISStore(url, **options) as store:
                store.insert(zones)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("second_bulk", [False, True], ids=["two-incremental", "incremental-and-bulk"])
def test_concurrent_loads_keep_every_row(zones_db, demo_small, monkeypatch, second_bulk):
    """Two loads provably in flight together: both COPYs done, both queued on the version row."""
    monkeypatch.setattr(loading, "BULK_LOCK_TIMEOUT", "200ms")  # the bulk attempt gives way quickly
    first = demo_small.iloc[:300].assign(source="first")
    second = demo_small.iloc[300:900].assign(source="second")
    start = fingerprint(zones_db)
    errors: list = []
    with psycopg.connect(zones_db) as blocker:
        blocker.execute("SELECT value FROM forestguard_meta WHERE key = 'data_version' FOR UPDATE")
        threads = [_insert_in_thread(zones_db, first, errors)]
        wait_until(lambda: scalar(zones_db, COPY_WAITING_ON_VERSION) == 1, timeout=30, what="first load queued")
        threads.append(_insert_in_thread(zones_db, second, errors, bulk_min_rows=100 if second_bulk else 10**9))
        wait_until(lambda: scalar(zones_db, COPY_WAITING_ON_VERSION) == 2, timeout=30, what="second load queued")
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    after = fingerprint(zones_db)
    assert after.data_version == start.data_version + 2
    assert after.indexes == start.indexes
    with psycopg.connect(zones_db) as con:
        got = dict(con.execute("SELECT source, count(*) FROM deforestation_zones GROUP BY source").fetchall())
        area = dict(con.execute("SELECT source, sum(area_ha) FROM deforestation_zones GROUP BY source").fetchall())
        assert con.execute("SELECT count(DISTINCT id) = count(*) FROM deforestation_zones").fetchone()[0]
    assert got == {"first": len(first), "second": len(second)}
    assert float(area["first"]) == pytest.approx(first["area_ha"].sum(), abs=0.005)
    assert float(area["second"]) == pytest.approx(second["area_ha"].sum(), abs=0.005)


def _ssl_of(url: str, application: str) -> list[bool]:
    with psycopg.connect(url) as con:
        return [r[0] for r in con.execute(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = %s", [application]
        )]


def test_tls_and_other_url_options_reach_libpq(postgis_server, zones_db, demo_small, tmp_path):
    if postgis_server is None or postgis_server.certificate is None:
        pytest.skip("the TLS set-up of a server named by FORESTGUARD_TEST_DATABASE_URL is not known")
    verified = f"{zones_db}?sslmode=verify-full&sslrootcert={postgis_server.certificate}&application_name=fg-tls"
    with stores.open(verified) as store:
        assert store.count() == 0
        assert set(_ssl_of(zones_db, "fg-tls")) == {True}
    with stores.open(f"{zones_db}?sslmode=disable&application_name=fg-plain") as store:
        store.count()
        assert set(_ssl_of(zones_db, "fg-plain")) == {False}

    stranger = tmp_path / "stranger.crt"  # a root that did not sign the server's certificate
    made = subprocess.run(["openssl", "req", "-new", "-x509", "-days", "1", "-nodes", "-subj", "/CN=stranger",
                           "-keyout", str(tmp_path / "stranger.key"), "-out", str(stranger)], capture_output=True)
    assert made.returncode == 0, made.stderr
    with pytest.raises(UserError, match="certificate verify failed") as refused:
        stores.open(zones_db.replace("postgres@", "postgres:hunter2@") + f"?sslmode=verify-full&sslrootcert={stranger}")
    assert "hunter2" not in str(refused.value) and len(str(refused.value).splitlines()) == 1

    read_only = zones_db + "?options=-c%20default_transaction_read_only%3Don"
    with stores.open(read_only) as store:
        with pytest.raises(ReadOnlyStore, match="read-only server"):
            store.insert(demo_small.head(3))


def test_reads_go_to_the_replica_and_writes_to_the_primary(postgis_admin_url, zones_db, demo_small, monkeypatch):
    from tests.fixtures.postgis import create_database, drop_database

    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(100))
    # A "replica" that lags: a copy taken now, before the next write reaches the primary.
    replica = create_database(postgis_admin_url, template=psycopg.conninfo.conninfo_to_dict(zones_db)["dbname"])
    try:
        with PostGISStore(zones_db, create=True) as store:
            store.insert(demo_small.iloc[100:150])
        monkeypatch.setenv("DATABASE_URL", zones_db)
        monkeypatch.setenv("DATABASE_READ_URL", replica)
        with stores.open() as reader:
            assert (reader.count(), reader.data_version()) == (100, 1), "statistics come from the replica"
            reader.insert(demo_small.iloc[150:160])
            assert reader.last_write_version == 3 and reader.count() == 100
        with stores.open(create=True) as writer:
            assert (writer.count(), writer.data_version()) == (160, 3), "a writer reads its own writes"
    finally:
        drop_database(postgis_admin_url, replica)


# -- loading while validating -------------------------------------------------------------

COPY_PROGRESS = "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE datname = current_database()"


class LateFailure(Exception):
    pass


@pytest.mark.parametrize("bulk", [False, True], ids=["incremental", "bulk"])
def test_batches_the_server_already_stored_roll_back_when_a_later_one_fails(zones_db, demo_small, bulk):
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(20))
    before = fingerprint(zones_db)

    def batches():
        yield demo_small.iloc[20:220]
        yield demo_small.iloc[220:420]
        # The server is storing what was sent while the producer still works: a real stream.
        wait_until(lambda: scalar(zones_db, COPY_PROGRESS) >= 200, timeout=30)
        raise LateFailure("the third batch had a bad record")

    with PostGISStore(zones_db, bulk_min_rows=100 if bulk else 10**9) as store:
        with pytest.raises(LateFailure):
            store.insert_batches(batches(), rows=600)
    assert fingerprint(zones_db) == before, "rows, indexes and data version must be untouched"


def test_batches_with_no_zones_write_nothing_not_even_a_version(zones_db, demo_small):
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(5))
        before = fingerprint(zones_db)
        assert store.insert_batches(iter([demo_small.iloc[0:0], demo_small.iloc[0:0]]), rows=10) == 0
    assert fingerprint(zones_db) == before


def raw_records(demo_small: gpd.GeoDataFrame, n: int, bad_at: list[int]) -> gpd.GeoDataFrame:
    """``n`` demo records as a source file would hold them, bow-ties (self-intersecting) at ``bad_at``."""
    raw = demo_small.head(n)[["country", "region", "classification", "year", "source", "confidence", "verified", "geometry"]].copy()
    bowtie = shapely.Polygon([(-60, -5), (-59.99, -4.99), (-59.99, -5), (-60, -4.99), (-60, -5)])
    for i in bad_at:
        raw.iloc[i, raw.columns.get_loc("geometry")] = bowtie
    return raw.reset_index(drop=True)


@pytest.mark.parametrize("streamed", [False, True], ids=["read-whole", "streamed"])
def test_ingest_validates_in_batches_and_a_reject_in_the_last_loads_nothing(zones_db, demo_small, tmp_path, monkeypatch, streamed):
    import forestguard.ingest as ingest_module
    import forestguard.sources as sources_module

    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 100)
    monkeypatch.setattr(sources_module, "STREAM_MIN_BYTES", 0 if streamed else 1 << 40)
    with PostGISStore(zones_db, create=True) as store:
        store.insert(demo_small.head(10))
    before = fingerprint(zones_db)
    path = tmp_path / "late.gpkg"
    raw_records(demo_small, 450, bad_at=[42, 449]).to_file(path, layer="zones")
    with pytest.raises(IngestRejected) as caught:
        ingest([path], db=zones_db)
    assert [r.feature for r in caught.value.rejects] == [42, 449]  # numbered across batches
    assert all("Self-intersection" in r.reason for r in caught.value.rejects)
    assert fingerprint(zones_db) == before


@pytest.mark.parametrize("streamed", [False, True], ids=["read-whole", "streamed"])
def test_ingest_in_batches_with_skip_invalid_loads_the_rest(zones_db, demo_small, tmp_path, monkeypatch, streamed):
    import forestguard.ingest as ingest_module
    import forestguard.sources as sources_module

    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 100)
    monkeypatch.setattr(sources_module, "STREAM_MIN_BYTES", 0 if streamed else 1 << 40)
    path = tmp_path / "some-bad.gpkg"
    raw_records(demo_small, 450, bad_at=[150, 420]).to_file(path, layer="zones")
    result = ingest([path], db=zones_db, skip_invalid=tmp_path / "rejects.csv")
    assert result.loaded == 448 and result.engine == "postgis"
    assert scalar(zones_db, "SELECT count(*) FROM deforestation_zones") == 448
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects["feature"].tolist() == [150, 420]
    expected = demo_small.head(450).drop(index=[150, 420])
    got = scalar(zones_db, "SELECT sum(area_ha) FROM deforestation_zones")
    assert got == sum(Decimal(f"{a:.2f}") for a in expected["area_ha"])
    # The geometries arrive whole whichever way they were encoded (the file's own WKB when streamed).
    assert scalar(zones_db, "SELECT count(*) FROM deforestation_zones WHERE ST_SRID(geometry) = 4326 AND ST_IsValid(geometry)") == 448
    assert scalar(zones_db, "SELECT sum(ST_NPoints(geometry)) FROM deforestation_zones") == int(shapely.get_num_coordinates(expected.geometry.values).sum())
