"""Deterministic synthetic zones inside real country shapes.

The demo data set is what every later feature and benchmark runs on, so it is
shaped like the real thing: clearings weighted to tropical-forest countries,
years 2015–2024 with a per-country trend, sizes mostly 1–500 ha with a long
tail, a legal/illegal mix, confidence, verification and several sources. The
generated records go through the same validation as any ingested file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .geodata import countries
from .validation import validate

YEARS = np.arange(2015, 2025)
VERTICES = 9

#: Relative share of zones per country (Natural Earth names).
COUNTRY_WEIGHTS: dict[str, float] = {
    "Brazil": 30, "Indonesia": 12, "Dem. Rep. Congo": 10, "Bolivia": 5, "Peru": 4, "Colombia": 4,
    "Malaysia": 3, "Paraguay": 3, "Myanmar": 2, "Mexico": 2, "Cambodia": 2, "Laos": 2,
    "Papua New Guinea": 2, "Cameroon": 2, "Nigeria": 1.5, "Madagascar": 1.5, "Venezuela": 1.5,
    "Argentina": 1.5, "Côte d'Ivoire": 1.5, "Mozambique": 1.5, "Angola": 1.5, "Ecuador": 1,
    "Guatemala": 1, "Honduras": 1, "Nicaragua": 1, "Ghana": 1, "Tanzania": 1, "Zambia": 1,
    "Central African Rep.": 1, "Congo": 1, "Vietnam": 1, "Gabon": 0.5, "Liberia": 0.5,
    "Thailand": 0.5, "Philippines": 0.5, "India": 0.5, "Guyana": 0.3, "Suriname": 0.3,
}
BRAZIL_SOURCES = ["PRODES", "DETER", "GLAD", "Sentinel-2 analyst"]
OTHER_SOURCES = ["GLAD", "RADD", "Sentinel-2 analyst", "Field survey"]
OCTANTS = np.array(["East", "North-East", "North", "North-West", "West", "South-West", "South", "South-East"])
M_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class DemoSpec:
    zones: int = 100_000
    seed: int = 42


def points_in(geom: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform random points inside a (Multi)Polygon, by rejection from its bounding box."""
    shapely.prepare(geom)
    xmin, ymin, xmax, ymax = geom.bounds
    fill = max(geom.area / ((xmax - xmin) * (ymax - ymin)), 0.05)
    found: list[np.ndarray] = []
    have = 0
    while have < n:
        m = int((n - have) / fill * 1.2) + 16
        x = rng.uniform(xmin, xmax, m)
        y = rng.uniform(ymin, ymax, m)
        inside = shapely.contains_xy(geom, x, y)
        pts = np.column_stack([x[inside], y[inside]])
        found.append(pts)
        have += len(pts)
    return np.concatenate(found)[:n]


def _sizes_ha(n: int, rng: np.random.Generator) -> np.ndarray:
    """Most clearings 1–500 ha (log-normal), a Pareto tail of large ones."""
    body = np.exp(rng.normal(np.log(25.0), 1.25, n))
    tail = rng.random(n) < 0.02
    body[tail] = 400.0 * (1 + rng.pareto(1.3, tail.sum()))
    return np.clip(body, 0.5, 60_000.0)


def _shapes(centres: np.ndarray, area_ha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Irregular star-shaped polygons (always simple) of roughly the wanted area."""
    n = len(centres)
    # Evenly spaced angles with jitter keep every gap under 180°, so the ring never crosses itself.
    step = 2 * np.pi / VERTICES
    angles = np.arange(VERTICES) * step + rng.uniform(-0.4, 0.4, (n, VERTICES)) * step + rng.uniform(0, step, (n, 1))
    radii = rng.uniform(0.65, 1.3, (n, VERTICES))
    radius_m = np.sqrt(area_ha * 10_000.0 / np.pi)[:, None] * radii
    lat = centres[:, 1:2]
    dx = radius_m * np.cos(angles) / (M_PER_DEGREE * np.cos(np.radians(lat)))
    dy = radius_m * np.sin(angles) / M_PER_DEGREE
    ring = np.stack([centres[:, 0:1] + dx, np.clip(lat + dy, -89.9, 89.9)], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(ring)


#: Zones generated, validated and loaded at a time: memory stays bounded whatever ``--zones`` asks.
BATCH_ZONES = 100_000


def generate_batches(spec: DemoSpec = DemoSpec(), batch_zones: int = BATCH_ZONES) -> Iterator[gpd.GeoDataFrame]:
    """The demo records (same seed, same zones), before validation, at most ``batch_zones`` at a time.

    Each country draws from its own random stream (spawned from the seed) and each of its
    batches from a stream of that one, so a batch is made without the ones before it and
    the zones do not depend on the batch size's history, only on (seed, zones, batch size).
    """
    rng = np.random.default_rng(spec.seed)
    world = countries().set_index("name")
    names = [c for c in COUNTRY_WEIGHTS if c in world.index]
    weights = np.array([COUNTRY_WEIGHTS[c] for c in names])
    per_country = rng.multinomial(spec.zones, weights / weights.sum())
    streams = np.random.SeedSequence(spec.seed).spawn(len(names))
    for name, n, stream in zip(names, per_country, streams):
        if n == 0:
            continue
        country_rng = np.random.default_rng(stream)
        geom = world.loc[name, "geometry"]
        shapely.prepare(geom)
        trend = country_rng.uniform(-0.08, 0.15)
        p_illegal = country_rng.uniform(0.3, 0.8)
        starts = range(0, int(n), batch_zones)
        for start, batch_stream in zip(starts, stream.spawn(len(starts))):
            yield _country_batch(name, geom, min(batch_zones, int(n) - start), trend, p_illegal, np.random.default_rng(batch_stream))


def _country_batch(name: str, geom: shapely.Geometry, n: int, trend: float, p_illegal: float, rng: np.random.Generator) -> gpd.GeoDataFrame:
    centres = points_in(geom, n, rng)
    centre = np.array(geom.representative_point().coords[0])
    offset = centres - centre
    octant = ((np.degrees(np.arctan2(offset[:, 1], offset[:, 0])) + 22.5) % 360 // 45).astype(int)
    near = np.hypot(*offset.T) < 0.25 * np.hypot(*(np.array(geom.bounds[2:]) - geom.bounds[:2]))
    region = np.where(near, "Central", OCTANTS[octant])
    year_w = np.clip(1 + trend * (YEARS - YEARS[0]), 0.2, None)
    year = rng.choice(YEARS, n, p=year_w / year_w.sum())
    cls = np.where(rng.random(n) < p_illegal, "illegal", "legal").astype(object)
    cls[rng.random(n) < 0.04] = None
    confidence = np.round(rng.beta(8, 2, n), 2)
    confidence[rng.random(n) < 0.03] = np.nan
    verified = rng.random(n) < np.where(np.nan_to_num(confidence) > 0.9, 0.6, 0.2)
    sources = BRAZIL_SOURCES if name == "Brazil" else OTHER_SOURCES
    columns = {
        "country": np.full(n, name, dtype=object),
        "region": region.astype(object),
        "classification": cls,
        "year": year,
        "source": rng.choice(np.array(sources, dtype=object), n),
        "confidence": confidence,
        "verified": verified,
    }
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(_shapes(centres, _sizes_ha(n, rng), rng), crs=4326))


def generate(spec: DemoSpec = DemoSpec()) -> gpd.GeoDataFrame:
    """All demo records in one frame (small demos and tests; :func:`generate_batches` streams)."""
    return gpd.GeoDataFrame(pd.concat(list(generate_batches(spec)), ignore_index=True), geometry="geometry", crs=4326)


def demo_batches(spec: DemoSpec = DemoSpec(), batch_zones: int = BATCH_ZONES) -> Iterator[gpd.GeoDataFrame]:
    """Generated zones after validation, batch by batch: exactly what a store receives."""
    label = f"demo(seed={spec.seed})"
    for batch in generate_batches(spec, batch_zones):
        checked = validate(batch, file=label)
        if checked.rejects:  # a generator bug, not a user error
            raise RuntimeError(f"demo generator produced invalid zones: {checked.rejects[0]}")
        yield checked.zones


def demo_zones(spec: DemoSpec = DemoSpec()) -> gpd.GeoDataFrame:
    """Generated zones after validation, in one frame."""
    return gpd.GeoDataFrame(pd.concat(list(demo_batches(spec)), ignore_index=True), geometry="geometry", crs=4326)


#: The saved area ``forestguard demo`` adds: an irregular polygon over the Amazon in Pará, Brazil (~40 Mha).
DEMO_AREA_NAME = "Demo area"
DEMO_AREA_RING = [(-56.0, -9.0), (-51.0, -9.5), (-49.0, -6.0), (-50.5, -3.0), (-54.0, -2.5), (-57.0, -4.0), (-56.5, -6.5), (-56.0, -9.0)]


def demo_area():
    """The demo's saved area, so the area report, ``stats --area`` and the dashboard's area work on the demo as is."""
    from .areas import Area

    return Area.of(DEMO_AREA_NAME, shapely.Polygon(DEMO_AREA_RING), source="forestguard demo")
