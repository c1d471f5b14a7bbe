"""GeoJSON of any size follows the same rules: a FeatureCollection over the streaming threshold is
read a batch at a time by the strict reader, never handed to GDAL.

The file is made here and the threshold set just under its size; records are bad in the first
and in later batches, columns come and go between batches, types mix. What must hold: the
batches put together are the whole-file read, and ingest refuses the same records, numbered
in the file, as when the file is read whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import forestguard.ingest
import forestguard.sources
from forestguard.errors import InputError
from forestguard.ingest import IngestRejected, ingest
from forestguard.sources import READ_PROBLEMS, open_zones_file, read_zones_file

BATCH = 40
FEATURES = 250


def _square(i: int) -> dict:
    x, y = 10 + (i % 50) * 0.02, (i // 50) * 0.02
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]}


def _records() -> list[str]:
    """Feature texts (some not valid JSON for ``json.dumps`` to write: duplicate keys, NaN)."""
    out = []
    for i in range(FEATURES):
        props: dict = {"country": "Brazil", "year": 2020, "region": f"r{i}", "confidence": 0.8}
        if 40 <= i < 80:
            del props["country"]  # a whole batch without the column: each record lacks a required value
        if 80 <= i < 120:
            props["year"] = str(2010 + i % 10)  # text in this batch only
        if i == 245:
            props["note"] = "<b>only here</b>"  # a column that first appears in the last batch
        if i == 5:
            props["year"] = 1800
        text = json.dumps({"type": "Feature", "properties": props, "geometry": _square(i)}, indent=1)
        if i == 130:
            text = text.replace('"region": "r130"', '"region": "a", "region": "b"')
        if i == 249:
            text = text.replace('"confidence": 0.8', '"confidence": NaN')
        if i == 170:
            text = text.replace('"coordinates": [', '"coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]], ', 1).replace('"Polygon"', '"Polygon"')
        if i == 200:
            text = "42"
        out.append(text)
    return out


@pytest.fixture(params=[7, 10_000], ids=["decoded-7-at-a-time", "decoded-whole-batches"])
def big_geojson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """The file, over the threshold; features turned into columns 7 at a time (a batch is then made of parts) or a batch at a time."""
    monkeypatch.setattr(forestguard.sources, "GEOJSON_DECODE_ROWS", request.param)
    path = tmp_path / "zones.geojson"
    path.write_text('{"type": "FeatureCollection",\n "name": "zones",\n "features": [\n' + ",\n".join(_records()) + "\n]}\n", encoding="utf-8")
    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", path.stat().st_size - 1)  # the file is over the threshold
    monkeypatch.setattr(forestguard.ingest, "BATCH_ROWS", BATCH)
    return path


def _whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", 1 << 40)


def test_the_batches_are_the_whole_read(big_geojson: Path) -> None:
    source = open_zones_file(big_geojson)
    assert source.frame is None and source.features == FEATURES
    batches = list(source.batches(BATCH))
    assert [len(b) for b in batches] == [BATCH] * 6 + [FEATURES - 6 * BATCH]
    whole = read_zones_file(big_geojson)
    assert source.columns == [c for c in whole.columns if c != "geometry"]
    assert all(list(b.columns) == list(whole.columns) for b in batches)
    streamed = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="geometry").astype(object), whole.drop(columns="geometry").astype(object))
    assert streamed.geometry.isna().equals(whole.geometry.isna())
    assert streamed.geometry.dropna().geom_equals_exact(whole.geometry.dropna(), 0).all()
    problems = {i * BATCH + row: found for i, b in enumerate(batches) for row, found in b.attrs[READ_PROBLEMS].items()}
    assert problems == whole.attrs[READ_PROBLEMS] and {130, 170, 200} <= set(problems)


def _refused_streamed_then_whole(monkeypatch: pytest.MonkeyPatch, error: type[Exception], path: Path, url: str) -> tuple:
    """The errors of an ingest of ``path`` streamed, then read whole; neither may leave a store behind."""
    with pytest.raises(error) as streamed:
        ingest([path], url)
    assert not Path(url).exists()
    _whole(monkeypatch)
    with pytest.raises(error) as whole:
        ingest([path], url)
    assert not Path(url).exists()
    return streamed.value, whole.value


def test_ingest_refuses_the_same_records_streamed_or_whole(big_geojson: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    streamed, whole = _refused_streamed_then_whole(monkeypatch, IngestRejected, big_geojson, str(tmp_path / "store.duckdb"))
    assert [str(r) for r in streamed.rejects] == [str(r) for r in whole.rejects]
    numbered = sorted({r.feature for r in streamed.rejects})
    assert numbered == [5, *range(40, 80), 130, 170, 200, 249], numbered
    assert streamed.column_lines == whole.column_lines


def test_skipping_the_invalid_records_loads_the_same_zones(big_geojson: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forestguard import stores

    def load(name: str) -> tuple[pd.DataFrame, str]:
        url, rejects = str(tmp_path / f"{name}.duckdb"), tmp_path / f"{name}.csv"
        result = ingest([big_geojson], url, skip_invalid=rejects)
        assert result.loaded == FEATURES - 45
        with stores.open(url, read_only=True) as store:
            zones = store.zones_arrow(columns=["region", "year", "confidence"]).to_pandas().sort_values("region", ignore_index=True)
        return zones, rejects.read_text()

    streamed = load("streamed")
    _whole(monkeypatch)
    whole = load("whole")
    pd.testing.assert_frame_equal(streamed[0], whole[0])
    assert streamed[1] == whole[1]


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_big_file_is_refused_before_anything_is_written(big_geojson: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: float) -> None:
    data = big_geojson.read_bytes()
    big_geojson.write_bytes(data[: int(len(data) * cut)])
    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", 1)
    streamed, whole = _refused_streamed_then_whole(monkeypatch, InputError, big_geojson, str(tmp_path / "store.duckdb"))
    assert str(streamed) == str(whole) and "not valid JSON (line" in str(whole)


def test_a_big_single_feature_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {"country": "Peru", "year": 2020}, "geometry": _square(1)}))
    monkeypatch.setattr(forestguard.sources, "STREAM_MIN_BYTES", 1)
    source = open_zones_file(path)
    assert source.frame is not None and len(source.frame) == 1
