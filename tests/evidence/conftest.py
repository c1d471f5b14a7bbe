"""Zones and reference layers built to exercise each rule, and layers over the demo zones."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from forestguard import stores
from forestguard.evidence.layers import read_layer
from forestguard.validation import validate

#: Around (-55, -5): each zone a 0.01° square (~123 ha), each case named.
ORIGIN = (-55.0, -5.0)
STEP = 0.05


def cell(i: int, dx: float = 0.0, dy: float = 0.0, size: float = 0.01) -> shapely.Polygon:
    """The square of case ``i`` (cases sit in a row, 0.05° apart), moved by dx/dy."""
    x, y = ORIGIN[0] + i * STEP + dx, ORIGIN[1] + dy
    return shapely.box(x, y, x + size, y + size)


#: name → (year, classification, geometry); the layers below are placed against these.
CASES = {
    "auth_year_before": (2020, None, cell(0)),
    "auth_valid": (2019, None, cell(1)),
    "touches_pa": (2020, "illegal", cell(2)),
    "half_in_pa": (2020, "legal", cell(3)),
    "two_properties": (2021, None, cell(4)),
    "embargo_later": (2021, None, cell(5)),
    "pa_created_later": (2020, None, cell(6)),
    "auth_partial": (2019, None, cell(7)),
    "corner_pa": (2020, None, cell(8)),
    "nothing": (2022, None, cell(9)),
}


def write_geojson(path: Path, geometries, properties) -> Path:
    features = [{"type": "Feature", "properties": p, "geometry": json.loads(shapely.to_geojson(g))} for g, p in zip(geometries, properties)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    return path


def case_zones() -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"country": ["Brazil"] * len(CASES), "region": list(CASES), "year": [c[0] for c in CASES.values()],
         "classification": [c[1] for c in CASES.values()], "source": ["test"] * len(CASES)},
        geometry=[c[2] for c in CASES.values()], crs=4326,
    )
    checked = validate(frame, file="cases")
    assert not checked.rejects
    return checked.zones


def case_layer_files(folder: Path) -> dict[str, tuple[str, Path, tuple[str, ...]]]:
    """name → (kind, file, --map options)."""
    authorization = write_geojson(
        folder / "asv.geojson",
        [cell(0).buffer(0.002, join_style="mitre"), cell(1).buffer(0.002, join_style="mitre"), shapely.box(*cell(7).bounds[:2], cell(7).bounds[0] + 0.009, cell(7).bounds[3])],
        [{"permit": "ASV-1", "from": "2019-01-01", "to": "2019-12-31"}, {"permit": "ASV-2", "from": "2019-03-01", "to": "2020-02-28"},
         {"permit": "ASV-3", "from": "2018-01-01", "to": "2020-12-31"}],
    )
    x2, y2 = cell(2).bounds[2], cell(2).bounds[1]
    x3 = cell(3).bounds[0] + 0.005
    x8, y8 = cell(8).bounds[2], cell(8).bounds[3]
    protected = write_geojson(
        folder / "ucs.geojson",
        [shapely.box(x2, y2, x2 + 0.02, y2 + 0.01),  # shares the zone's east edge: touches, never enters
         shapely.box(x3, cell(3).bounds[1] - 0.01, x3 + 0.03, cell(3).bounds[3] + 0.01),  # covers the east half
         cell(6).buffer(0.01),
         shapely.box(x8, y8, x8 + 0.01, y8 + 0.01)],  # meets the zone at one corner
        [{"WDPA": "UC-touch", "created": "1990-01-01"}, {"WDPA": "UC-half", "created": "2005-06-01"},
         {"WDPA": "UC-new", "created": "2022-07-01"}, {"WDPA": "UC-corner", "created": "2000-01-01"}],
    )
    x4 = cell(4).bounds[0] + 0.006
    properties = write_geojson(
        folder / "car.geojson",
        [shapely.box(x4 - 0.02, cell(4).bounds[1] - 0.01, x4, cell(4).bounds[3] + 0.01), shapely.box(x4, cell(4).bounds[1] - 0.01, x4 + 0.02, cell(4).bounds[3] + 0.01)],
        [{"cod_imovel": "PA-1500107-AAAA"}, {"cod_imovel": "PA-1500107-BBBB"}],
    )
    embargo = write_geojson(folder / "embargos.geojson", [cell(5).buffer(0.003)], [{"id": "EMB-1", "data": "2023-04-15"}])
    return {
        "ASV": ("authorization", authorization, ("id=permit", "valid_from=from", "valid_to=to")),
        "UCs": ("protected_area", protected, ("id=WDPA", "valid_from=created")),
        "CAR": ("property", properties, ("id=cod_imovel",)),
        "Embargos <IBAMA>": ("embargo", embargo, ("date=data",)),
    }


def add_layers(store, folder: Path, names=None) -> None:
    for name, (kind, path, maps) in case_layer_files(folder).items():
        if names is None or name in names:
            read = read_layer(kind, path, name=name, source=f"{name} source", as_of="2024-06-30", maps=maps)
            store.add_layer(read.layer, read.features)


@pytest.fixture
def case_store(tmp_path) -> str:
    """The case zones in a DuckDB store, every case layer stored; returns its URL."""
    url = str(tmp_path / "cases.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(case_zones())
        add_layers(store, tmp_path)
    return url


def zone_ids(store) -> dict[str, int]:
    table = store.zones_arrow(columns=["id", "region"])
    return dict(zip(table.column("region").to_pylist(), table.column("id").to_pylist()))


def demo_layer_files(folder: Path, zones: gpd.GeoDataFrame, seed: int = 3) -> dict[str, tuple[str, Path, tuple[str, ...]]]:
    """Layers over the demo zones: features of several sizes, holes, multipolygons, cutting many zones."""
    rng = np.random.default_rng(seed)
    centres = shapely.centroid(np.asarray(zones.geometry.values, dtype=object))
    picks = rng.choice(len(centres), 60, replace=False)
    protected, props = [], []
    for n, i in enumerate(picks[:30]):
        c = centres[i]
        shape = shapely.Point(c.x, c.y).buffer(rng.uniform(0.01, 0.4), quad_segs=6)
        if n % 3 == 0:
            shape = shape.difference(shapely.Point(c.x, c.y).buffer(0.005))  # a hole right under a zone
        if n % 5 == 0:
            shape = shapely.union_all([shape, shapely.box(c.x + 0.5, c.y, c.x + 0.6, c.y + 0.1)])  # a second part
        protected.append(shape)
    for i in picks[30:]:
        c = centres[i]
        props.append(shapely.box(c.x - 0.004, c.y - 0.003, c.x + rng.uniform(0.0, 0.01), c.y + 0.005))
    return {
        "PA demo": ("protected_area", write_geojson(folder / "pa.geojson", protected, [{"n": f"pa-{k}"} for k in range(len(protected))]), ("id=n",)),
        "CAR demo": ("property", write_geojson(folder / "car.geojson", props, [{"car": f"car-{k}"} for k in range(len(props))]), ("id=car",)),
    }
