"""Synthetic reference layers for ``forestguard demo``: evidence out of the box, on the demo's zones.

Deterministic (a seed), placed where the demo puts its zones (the same country weights, most
in Brazil), 10,000 features in all by default: protected areas and indigenous lands (large,
irregular, each with the year it was created), registered rural properties (CAR-like codes),
clearing authorizations inside some properties (valid one to three years), and embargoes
(small, dated). They are written as GeoParquet files and stored through
:func:`~forestguard.evidence.layers.read_layer`, exactly as ``forestguard layers add`` reads
a user's files. Every name says they are synthetic.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import geopandas as gpd
import numpy as np
import pyarrow as pa
import shapely

from ..demo import COUNTRY_WEIGHTS, M_PER_DEGREE, points_in
from ..geodata import countries
from .layers import LayerFile, read_layer

SOURCE = "ForestGuard demo (synthetic)"
AS_OF = date(2024, 12, 31)


@dataclass(frozen=True)
class DemoLayersSpec:
    """How many features of each kind (10,000 in all by default)."""

    protected_areas: int = 400
    indigenous_lands: int = 200
    properties: int = 7_000
    authorizations: int = 1_800
    embargoes: int = 600
    seed: int = 42


#: (layer name, kind, --map options of its file)
LAYERS = (
    ("Demo protected areas", "protected_area", ("id=wdpa_id", "valid_from=created")),
    ("Demo indigenous lands", "indigenous_land", ("id=code", "valid_from=recognised")),
    ("Demo rural properties (CAR-like)", "property", ("id=car",)),
    ("Demo clearing authorizations", "authorization", ("id=permit", "valid_from=starts", "valid_to=ends")),
    ("Demo embargoes", "embargo", ("id=embargo", "date=embargoed")),
)


def _star(centres: np.ndarray, radius_m: np.ndarray, vertices: int, rng: np.random.Generator) -> np.ndarray:
    """Irregular simple polygons (star-shaped around each centre) of about ``radius_m``."""
    n = len(centres)
    step = 2 * np.pi / vertices
    angles = np.arange(vertices) * step + rng.uniform(-0.35, 0.35, (n, vertices)) * step
    radii = radius_m[:, None] * rng.uniform(0.6, 1.25, (n, vertices))
    lat = centres[:, 1:2]
    ring = np.stack([centres[:, 0:1] + radii * np.cos(angles) / (M_PER_DEGREE * np.cos(np.radians(lat))),
                     np.clip(lat + radii * np.sin(angles) / M_PER_DEGREE, -89.0, 89.0)], axis=-1)
    return shapely.polygons(np.concatenate([ring, ring[:, :1]], axis=1))


def _rectangles(centres: np.ndarray, area_ha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slightly rotated rectangles of ``area_ha`` (rural properties, like registry polygons)."""
    side = np.sqrt(area_ha * 10_000.0)
    aspect = rng.uniform(0.5, 2.0, len(centres))
    half_w, half_h = side * np.sqrt(aspect) / 2, side / np.sqrt(aspect) / 2
    angle = rng.uniform(-0.3, 0.3, len(centres))
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    x = corners[None, :, 0] * half_w[:, None]
    y = corners[None, :, 1] * half_h[:, None]
    rx, ry = x * np.cos(angle)[:, None] - y * np.sin(angle)[:, None], x * np.sin(angle)[:, None] + y * np.cos(angle)[:, None]
    lat = centres[:, 1:2]
    ring = np.stack([centres[:, 0:1] + rx / (M_PER_DEGREE * np.cos(np.radians(lat))), lat + ry / M_PER_DEGREE], axis=-1)
    return shapely.polygons(ring)


def _centres(n: int, rng: np.random.Generator, weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread over the demo's countries by their weights (and each point's country)."""
    world = countries().set_index("name")
    weights = weights or COUNTRY_WEIGHTS
    names = [c for c in weights if c in world.index]
    share = np.array([weights[c] for c in names])
    counts = rng.multinomial(n, share / share.sum())
    points, which = [], []
    for name, k in zip(names, counts):
        if k:
            points.append(points_in(world.loc[name, "geometry"], int(k), rng))
            which.extend([name] * int(k))
    return np.concatenate(points), np.array(which, dtype=object)


def _inside_countries(polygons: np.ndarray, country: np.ndarray) -> np.ndarray:
    """Each polygon clipped to its country (a protected area does not spill into the sea); always valid polygons."""
    world = countries().set_index("name")
    clipped = shapely.intersection(polygons, np.array([world.loc[c, "geometry"] for c in country], dtype=object))
    parts = []
    for geometry in clipped:
        polygonal = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon" and p.area > 0]
        parts.append(max(polygonal, key=lambda p: p.area) if polygonal else None)
    return np.array(parts, dtype=object)


def _years_ago(rng: np.random.Generator, n: int, first: int, last: int) -> list[date]:
    return [date(int(y), int(m), 1) for y, m in zip(rng.integers(first, last + 1, n), rng.integers(1, 13, n))]


def demo_layer_frames(spec: DemoLayersSpec = DemoLayersSpec(), anchors: np.ndarray | None = None) -> Iterator[tuple[str, str, tuple[str, ...], gpd.GeoDataFrame]]:
    """Each demo layer as a GeoDataFrame with the attributes a published file would have.

    ``anchors`` (lon, lat, year, radius in metres of some clearings) place authorizations and
    embargoes over clearings, so the demo shows every case of the rules.
    """
    rng = np.random.default_rng(spec.seed)
    centres, country = _centres(spec.protected_areas, rng)
    shapes = _inside_countries(_star(centres, rng.uniform(8_000, 45_000, len(centres)), 48, rng), country)
    keep = np.array([s is not None for s in shapes])
    yield (*LAYERS[0], gpd.GeoDataFrame({"wdpa_id": [f"DEMO-PA-{i:05d}" for i in range(keep.sum())],
                                         "created": _years_ago(rng, int(keep.sum()), 1985, 2021)}, geometry=list(shapes[keep]), crs=4326))
    forest = {c: COUNTRY_WEIGHTS[c] for c in ("Brazil", "Peru", "Colombia", "Bolivia", "Venezuela", "Ecuador", "Guyana", "Suriname", "Paraguay")}
    centres, country = _centres(spec.indigenous_lands, rng, forest)
    shapes = _inside_countries(_star(centres, rng.uniform(10_000, 60_000, len(centres)), 40, rng), country)
    keep = np.array([s is not None for s in shapes])
    yield (*LAYERS[1], gpd.GeoDataFrame({"code": [f"DEMO-TI-{i:04d}" for i in range(keep.sum())],
                                         "recognised": _years_ago(rng, int(keep.sum()), 1988, 2020)}, geometry=list(shapes[keep]), crs=4326))
    centres, country = _centres(spec.properties, rng)
    sizes = np.exp(rng.normal(np.log(1_500.0), 0.8, len(centres))).clip(100, 20_000)
    properties = _rectangles(centres, sizes, rng)
    codes = [f"DEMO-{c[:2].upper()}-{rng.integers(1_000_000, 9_999_999)}-{i:05d}" for i, c in enumerate(country)]
    yield (*LAYERS[2], gpd.GeoDataFrame({"car": codes}, geometry=list(properties), crs=4326))
    # Authorizations: half around clearings (valid in the clearing's year, or in the year before only: a permit that
    # had run out), half inside random properties; embargoes: a third over clearings, dated the year after.
    anchors = anchors if anchors is not None else np.zeros((0, 4))
    around = min(len(anchors), spec.authorizations // 2)
    chosen = rng.choice(len(properties), spec.authorizations - around, replace=len(properties) < spec.authorizations - around)
    inner = np.array([shapely.get_coordinates(shapely.centroid(p))[0] for p in properties[chosen]]).reshape(-1, 2)
    centres = np.concatenate([anchors[:around, :2], inner])
    radius = np.concatenate([anchors[:around, 3] * rng.uniform(1.6, 2.5, around), np.sqrt(sizes[chosen] * 10_000 / np.pi) * rng.uniform(0.3, 0.7, len(chosen))])
    authorized = _star(centres, radius, 10, rng)
    lapsed = rng.random(around) < 0.25
    first_year = anchors[:around, 2].astype(int) - lapsed
    starts = [date(int(y), 1, 1) + timedelta(days=int(d)) for y, d in zip(first_year, rng.integers(0, 60, around))]
    starts += [date(2015, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365 * 9, len(chosen))]
    ends = [date(int(y), 12, 31) for y in first_year] + [s + timedelta(days=int(d)) for s, d in zip(starts[around:], rng.integers(300, 365 * 3, len(chosen)))]
    yield (*LAYERS[3], gpd.GeoDataFrame({"permit": [f"DEMO-ASV-{i:05d}" for i in range(len(centres))], "starts": starts, "ends": ends},
                                        geometry=list(authorized), crs=4326))
    over = min(len(anchors) - around, spec.embargoes // 3)
    others, _ = _centres(spec.embargoes - over, rng)
    centres = np.concatenate([anchors[around : around + over, :2], others])
    radius = np.concatenate([anchors[around : around + over, 3] * rng.uniform(1.2, 2.0, over), rng.uniform(800, 4_000, len(others))])
    embargoed = _star(centres, radius, 12, rng)
    dates = [date(min(int(y) + 1, AS_OF.year), int(m), 1) for y, m in zip(anchors[around : around + over, 2], rng.integers(1, 13, over))]
    yield (*LAYERS[4], gpd.GeoDataFrame({"embargo": [f"DEMO-EMB-{i:05d}" for i in range(len(centres))],
                                         "embargoed": dates + _years_ago(rng, len(others), 2016, 2024)}, geometry=list(embargoed), crs=4326))


def demo_layers(spec: DemoLayersSpec = DemoLayersSpec(), anchors: np.ndarray | None = None) -> Iterator[LayerFile]:
    """The demo layers read back from the files they are written to, as a user's layers are."""
    with tempfile.TemporaryDirectory(prefix="forestguard-demo-layers-") as folder:
        for name, kind, maps, frame in demo_layer_frames(spec, anchors):
            path = Path(folder) / f"{kind}.parquet"
            frame.to_parquet(path)
            yield read_layer(kind, path, name=name, source=SOURCE, as_of=AS_OF, maps=maps)


def clearings(store, spec: DemoLayersSpec, n: int | None = None) -> np.ndarray:
    """(lon, lat, year, radius m) of some of the store's zones, chosen by the seed: where demo permits and embargoes go."""
    n = n if n is not None else spec.authorizations // 2 + spec.embargoes // 3
    batch = next(iter(store.zone_batches(columns=["id", "year", "area_ha", "geometry"], batch_rows=200_000)), None)
    if batch is None or not len(batch):
        return np.zeros((0, 4))
    rng = np.random.default_rng(spec.seed + 1)
    at = np.sort(rng.choice(len(batch), min(n, len(batch)), replace=False))
    chosen = batch.take(pa.array(at))
    centres = shapely.get_coordinates(shapely.centroid(shapely.from_wkb(chosen.column("geometry").to_numpy(zero_copy_only=False))))
    area = chosen.column("area_ha").to_numpy(zero_copy_only=False).astype(float)
    return np.column_stack([centres, chosen.column("year").to_numpy(), np.sqrt(area * 10_000 / np.pi)])


def add_demo_evidence(store, spec: DemoLayersSpec = DemoLayersSpec()) -> str:
    """The demo's layers stored (those not stored yet) and evidence computed: one line saying what was done."""
    from .compute import compute_evidence
    from .rules import load_rules

    stored = {layer.name for layer in store.reference_layers()}
    added = 0
    for read in demo_layers(spec, clearings(store, spec)):
        if read.layer.name not in stored:
            store.add_layer(read.layer, read.features)
            added += read.layer.features
    report = compute_evidence(store, load_rules())
    suggested = ", ".join(f"{k} {v:,}" for k, v in sorted(report.suggested.items()))
    return f"evidence: {added:,} synthetic reference features added; {report.findings_written:,} findings ({suggested or 'up to date'}) in {report.seconds:.1f} s"
