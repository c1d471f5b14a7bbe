"""Zones and areas for the area tests: an area built to cut zones, not only to hold them whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from forestguard import stores


def area_cutting(zones) -> shapely.Geometry:
    """A concave area over part of Brazil with a hole, plus boxes whose corners sit on other zones' centroids.

    Each box cuts its zone (a quarter of it lies inside), so the clip is exercised, not only
    the whole-zone case; the hole and the concave notch cut more.
    """
    big = shapely.Polygon([(-70, -15), (-45, -15), (-45, 0), (-55, -8), (-70, 0), (-70, -15)], holes=[[(-62, -12), (-58, -12), (-58, -9), (-62, -9), (-62, -12)]])
    others = zones[zones["country"] != "Brazil"].geometry.values[:40]
    centres = shapely.centroid(np.asarray(others, dtype=object))
    boxes = [shapely.box(p.x, p.y, p.x + 0.3, p.y + 0.3) for p in centres]
    return shapely.union_all([big, *boxes])


def write_geojson(path: Path, *geometries, properties: list[dict] | None = None) -> Path:
    features = [{"type": "Feature", "properties": (properties or [{}] * len(geometries))[i], "geometry": json.loads(shapely.to_geojson(g))}
                for i, g in enumerate(geometries)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.fixture(scope="module")
def area_store(tmp_path_factory, demo_small) -> str:
    url = str(tmp_path_factory.mktemp("areas") / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small)
    return url


@pytest.fixture(scope="module")
def cut_area(demo_small) -> shapely.Geometry:
    return area_cutting(demo_small)
