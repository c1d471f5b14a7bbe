"""Demo data: deterministic, inside real countries, plausible."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from forestguard.demo import COUNTRY_WEIGHTS, DemoSpec, demo_zones, generate
from forestguard.geodata import countries
from forestguard.validation import validate


def test_same_seed_same_zones_and_another_seed_other_zones(demo_small) -> None:
    again = demo_zones(DemoSpec(zones=2_000, seed=7))
    columns = ["country", "region", "classification", "area_ha", "year", "source", "confidence", "verified"]
    assert again[columns].equals(demo_small[columns])
    assert (shapely.to_wkb(again.geometry.values) == shapely.to_wkb(demo_small.geometry.values)).all()
    other = demo_zones(DemoSpec(zones=2_000, seed=8))
    assert not np.array_equal(shapely.to_wkb(other.geometry.values), shapely.to_wkb(demo_small.geometry.values))
    assert not other["area_ha"].equals(demo_small["area_ha"])


def test_exactly_the_number_asked_and_all_valid(demo_small) -> None:
    assert len(demo_small) == 2_000
    raw = generate(DemoSpec(zones=500, seed=3))
    assert len(raw) == 500 and validate(raw, file="demo").rejects == []


def test_zones_lie_inside_their_country(demo_small) -> None:
    world = countries().set_index("name")
    outlines = world.loc[demo_small["country"], "geometry"].values
    inside = shapely.contains(outlines, shapely.centroid(demo_small.geometry.values))
    assert inside.mean() > 0.97


def test_values_are_plausible(demo_small) -> None:
    assert demo_small["year"].between(2015, 2024).all() and demo_small["year"].nunique() == 10
    area = demo_small["area_ha"]
    assert ((area >= 1) & (area <= 500)).mean() > 0.8 and (area > 500).any() and (area > 0).all()
    classes = demo_small["classification"].value_counts(dropna=False)
    assert {"Légale", "Illégale"} <= set(classes.index.dropna()) and demo_small["classification"].isna().any()
    confidence = demo_small["confidence"].dropna()
    assert confidence.between(0, 1).all() and demo_small["confidence"].isna().any()
    assert 0 < demo_small["verified"].mean() < 1
    assert demo_small["country"].value_counts().index[0] == "Brazil"
    assert set(demo_small["country"]) <= set(COUNTRY_WEIGHTS)
    assert demo_small["source"].nunique() >= 3


def test_demo_area_is_the_geodesic_area(demo_small) -> None:
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    for geometry, area in list(zip(demo_small.geometry, demo_small["area_ha"]))[:50]:
        assert area == pytest.approx(abs(geod.geometry_area_perimeter(geometry)[0]) / 10_000, abs=0.006)
