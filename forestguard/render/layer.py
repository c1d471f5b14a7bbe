"""Zones prepared for maps: a compact row per zone, shared by everyone; geometry from the store.

A :class:`ZoneLayer` is what every map in ForestGuard draws from (dashboard, reports,
notebooks). It holds no geometry: per zone only what a map needs at any zoom where the
zone is smaller than a few pixels, which is every zone at world and country scale — its
area-weighted centroid in Web Mercator, its extent, its Mercator area, its measures and
codes (about 40 bytes). The polygons of the few zones big enough to span pixels at the
current view are read from the store through its spatial index
(:class:`~forestguard.render.geometry.GeometrySource`), so the memory a layer needs grows
with the compact rows only, never with vertices.

Rows are sorted by Mercator area: at a given pixel size the zones drawn as points are a
prefix of the table (a view, not a copy) and the few drawn as polygons a suffix. A
selection (:meth:`ZoneLayer.select`) is an index into the shared rows (4 bytes a zone),
not a copy of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..config import redact, settings
from ..errors import UserError
from ..memory import budget_bytes, release_unused
from ..schema import Classification
from ..stores.base import ZoneFilter, ZoneStore
from ..streams import read_ahead
from .geometry import GeometrySource, ZoneGeometry

#: Categories of the ``classification`` column, in colour-key order ("none": unclassified).
CATEGORIES: tuple[str, ...] = ("legal", "illegal", "none")

#: What a map shows when there is nothing to fit to (Web Mercator).
WORLD: tuple[float, float, float, float] = (-20037508.34, -8399737.89, 20037508.34, 15538711.10)

#: Bytes a zone costs in a layer (the columns below, as held).
ROW_BYTES = 37
#: Zones read from the store at a time while a layer is built.
BUILD_BATCH_ROWS = 100_000
#: Rows handed to the rasterizer at a time (bounded scratch memory, whatever the selection).
CHUNK_ROWS = 1_000_000
#: Share of the process's memory budget (FORESTGUARD_MEMORY_MB) the layer's rows may take.
LAYER_SHARE = 0.5

_READ_COLUMNS = ["id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry"]
#: ``confidence`` is held as hundredths in one byte (the store's DECIMAL(3,2)); this code means none.
NO_CONFIDENCE = 255


class LayerTooLarge(UserError):
    """The zones would not fit the memory budget: refused with the reason rather than killed by the OOM killer."""


def layer_budget_bytes() -> int:
    return budget_bytes(LAYER_SHARE)


@dataclass(frozen=True, eq=False)
class ZoneLayer:
    """Zones ready to draw: compact rows sorted by Mercator area, optionally a selection of them.

    ``base`` holds, per zone: ``x``/``y`` (Web Mercator area centroid, float32), ``size``
    (larger side of the bounding box, m), ``mercator_area`` (m²), ``area_ha``, ``classification`` (categorical of :data:`CATEGORIES`),
    ``year``, ``country``/``region``/``source`` (categoricals), ``verified``,
    ``confidence`` (hundredths, :data:`NO_CONFIDENCE` when none) and ``id``. Treat it as
    read-only: every session of the process shares it. ``rows`` (sorted positions into
    ``base``) is the selection, ``None`` for all rows.
    """

    source: str
    data_version: int
    where: ZoneFilter
    base: pd.DataFrame
    geometry: GeometrySource | None = None
    rows: np.ndarray | None = None
    refined: tuple[ZoneFilter, ...] = ()
    extents: pd.DataFrame | None = None  #: exact Web Mercator extent of each country's zones (index: country), from the build

    def __len__(self) -> int:
        return len(self.base) if self.rows is None else len(self.rows)

    @property
    def key(self) -> str:
        """Identity for caches: store, data version and the zones' filter.

        The same zones give the same key however the layer was made (a report's layer of
        Brazil, or the dashboard's whole layer with Brazil selected), so their map aggregates
        are one cache entry.
        """
        combined: ZoneFilter | None = self.where
        for refined in self.refined:
            combined = combined.narrowed(refined) if combined is not None else None
        filters = [combined] if combined is not None else [self.where, *self.refined]
        return "&".join([f"{self.source}@{self.data_version}", *(f.key() for f in filters)])

    @property
    def nbytes(self) -> int:
        """Memory of this layer's own arrays (a selection: its index only)."""
        if self.rows is not None:
            return int(self.rows.nbytes)
        return int(self.base.memory_usage(deep=False).sum())

    # -- reading rows ----------------------------------------------------------------------------
    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Values of one column for the selected rows ``start:stop`` (a view when nothing is selected)."""
        values = self.base[name].to_numpy() if name not in ("classification", "country", "region", "source") else self.base[name].cat.codes.to_numpy()
        if self.rows is None:
            return values[start:stop]
        return values[self.rows[start:stop]]

    def frame(self, columns: Sequence[str] | None = None, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The selected rows ``start:stop`` as a frame (categoricals kept)."""
        base = self.base if columns is None else self.base[list(columns)]
        if self.rows is None:
            return base.iloc[start:stop]
        return base.take(self.rows[start:stop])

    def chunks(self, columns: Sequence[str], start: int = 0, stop: int | None = None, size: int | None = None) -> Iterator[pd.DataFrame]:
        """The selected rows ``start:stop`` a bounded number at a time: scratch memory does not grow with the data."""
        stop = len(self) if stop is None else stop
        size = size or CHUNK_ROWS
        for first in range(start, stop, size):
            yield self.frame(columns, first, min(first + size, stop))

    @property
    def zones(self) -> pd.DataFrame:
        """All selected rows as one frame: a copy for a selection, for small layers and tests."""
        return self.frame()

    def split(self, mercator_area: float) -> int:
        """How many selected rows (a prefix) have a Mercator area below ``mercator_area``."""
        base_split = int(np.searchsorted(self.base["mercator_area"].to_numpy(), mercator_area, side="left"))
        return base_split if self.rows is None else int(np.searchsorted(self.rows, base_split, side="left"))

    # -- extents -------------------------------------------------------------------------------
    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """Web Mercator bounds of the selected zones (xmin, ymin, xmax, ymax); the world when empty.

        Exact for a whole layer (measured from the polygons when it was built); for a selection,
        the union of each zone's centroid ± size, which holds the zones with a small margin.
        """
        if not len(self):
            return WORLD
        if self.rows is None and self.extents is not None and len(self.extents):
            e = self.extents
            return float(e["xmin"].min()), float(e["ymin"].min()), float(e["xmax"].max()), float(e["ymax"].max())
        box = [np.inf, np.inf, -np.inf, -np.inf]
        for chunk in self.chunks(["x", "y", "size"]):
            x, y, half = chunk["x"].to_numpy(np.float64), chunk["y"].to_numpy(np.float64), chunk["size"].to_numpy(np.float64)
            box = [min(box[0], float((x - half).min())), min(box[1], float((y - half).min())),
                   max(box[2], float((x + half).max())), max(box[3], float((y + half).max()))]
        return tuple(box)  # type: ignore[return-value]

    @cached_property
    def country_bounds(self) -> pd.DataFrame:
        """Web Mercator bounds of each country's zones (index: country), computed once per layer (exact for a whole layer)."""
        if self.rows is None and self.extents is not None:
            return self.extents
        codes = self.column("country").astype(np.int64)
        categories = self.base["country"].cat.categories
        n = len(categories)
        low_x, low_y = np.full(n, np.inf), np.full(n, np.inf)
        high_x, high_y = np.full(n, -np.inf), np.full(n, -np.inf)
        x, y, half = (self.column(c).astype(np.float64) for c in ("x", "y", "size"))
        valid = codes >= 0
        np.minimum.at(low_x, codes[valid], (x - half)[valid])
        np.minimum.at(low_y, codes[valid], (y - half)[valid])
        np.maximum.at(high_x, codes[valid], (x + half)[valid])
        np.maximum.at(high_y, codes[valid], (y + half)[valid])
        present = np.isfinite(low_x)
        return pd.DataFrame({"xmin": low_x[present], "ymin": low_y[present], "xmax": high_x[present], "ymax": high_y[present]},
                            index=pd.Index(categories[present], name="country"))

    def bounds_of(self, countries: Sequence[str]) -> tuple[float, float, float, float]:
        """Web Mercator bounds of the zones of ``countries`` (all zones when none), without selecting them."""
        if not countries:
            return self.bounds
        rows = self.country_bounds.loc[self.country_bounds.index.intersection(list(countries))]
        if rows.empty:
            return WORLD
        return float(rows["xmin"].min()), float(rows["ymin"].min()), float(rows["xmax"].max()), float(rows["ymax"].max())

    def in_box(self, box: tuple[float, float, float, float], start: int = 0, stop: int | None = None) -> np.ndarray:
        """Which selected rows ``start:stop`` may touch a Web Mercator box (centroid ± size holds the zone's extent)."""
        xmin, ymin, xmax, ymax = box
        x, y, half = (self.column(c, start, stop) for c in ("x", "y", "size"))
        return (x + half >= xmin) & (y + half >= ymin) & (x - half <= xmax) & (y - half <= ymax)

    # -- selecting -----------------------------------------------------------------------------
    def select(self, where: ZoneFilter) -> "ZoneLayer":
        """The zones of this layer that ``where`` also selects, filtered in memory (no store query).

        Same semantics as the stores' SQL (a missing confidence never passes a minimum); a
        bbox, an area or an overlap with a layer kind is asked of the store (its spatial index decides, exactly as its SQL does). An
        empty filter returns this layer itself. The result is an index into the shared rows:
        4 bytes a zone.
        """
        if where == ZoneFilter():
            return self
        in_bbox = None
        if where.bbox is not None or where.area is not None or where.overlaps:
            if self.geometry is None:
                raise ValueError("a layer without a store cannot select by bounding box, area or overlapping a layer kind")
            store = self.geometry.store
            if where.bbox is not None or where.area is not None:
                spatial = ZoneFilter(bbox=where.bbox, area=where.area)  # the store's index and exact test decide
                in_bbox = np.sort(store.zones_arrow(spatial, columns=["id"]).column("id").to_numpy())
            if where.overlaps:  # the zones evidence compute found overlapping a layer of these kinds
                found = np.sort(store.zones_arrow(ZoneFilter(overlaps=where.overlaps), columns=["id"]).column("id").to_numpy())
                in_bbox = found if in_bbox is None else np.intersect1d(in_bbox, found, assume_unique=True)
        keep: list[np.ndarray] = []
        for first in range(0, len(self), CHUNK_ROWS):
            stop = min(first + CHUNK_ROWS, len(self))
            mask = self._mask(where, first, stop)
            if in_bbox is not None:
                ids = self.column("id", first, stop)
                found = np.minimum(np.searchsorted(in_bbox, ids), max(len(in_bbox) - 1, 0))
                mask &= (in_bbox[found] == ids) if len(in_bbox) else False
            positions = np.flatnonzero(mask).astype(np.int64) + first
            keep.append(positions if self.rows is None else self.rows[positions])
        rows = np.concatenate(keep).astype(np.int32) if keep else np.zeros(0, dtype=np.int32)
        return ZoneLayer(self.source, self.data_version, self.where, self.base, self.geometry, rows, (*self.refined, where))

    def _mask(self, where: ZoneFilter, start: int, stop: int) -> np.ndarray:
        mask = np.ones(stop - start, dtype=bool)
        if where.countries:
            mask &= _in_categories(self.base["country"], self.column("country", start, stop), where.countries)
        if where.year_from is not None or where.year_to is not None:
            year = self.column("year", start, stop)
            if where.year_from is not None:
                mask &= year >= where.year_from
            if where.year_to is not None:
                mask &= year <= where.year_to
        if where.classifications:
            wanted = [CATEGORIES.index(c.value) for c in where.classifications]
            mask &= np.isin(self.column("classification", start, stop), wanted)
        if where.sources:
            mask &= _in_categories(self.base["source"], self.column("source", start, stop), where.sources)
        if where.verified_only:
            mask &= self.column("verified", start, stop)
        if where.min_confidence is not None:
            confidence = self.column("confidence", start, stop)
            mask &= (confidence != NO_CONFIDENCE) & (confidence >= _hundredths_at_least(where.min_confidence))
        return mask


def _hundredths_at_least(value: float) -> int:
    """The smallest stored confidence (in hundredths) that is ≥ ``value``."""
    return int(np.ceil(round(float(value) * 100, 9)))


def _in_categories(column: pd.Series, codes: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Which of ``codes`` (of a categorical column) are one of ``values``: a lookup by code."""
    categories = column.cat.categories
    wanted = np.zeros(len(categories) + 1, dtype=bool)  # the last slot answers for code -1 (missing)
    found = categories.get_indexer(list(values))
    wanted[found[found >= 0]] = True
    return wanted[codes]


# -- building ----------------------------------------------------------------------------------


def check_layer_budget(store: ZoneStore, where: ZoneFilter = ZoneFilter(), budget_bytes: int | None = None) -> int:
    """The number of zones a layer of ``where`` holds; :class:`LayerTooLarge` (one line) if they would not fit the budget."""
    budget = layer_budget_bytes() if budget_bytes is None else budget_bytes
    expected = store.count(where)
    if expected * ROW_BYTES > budget:
        raise LayerTooLarge(
            f"{redact(store.url)}: {expected:,} zones need {expected * ROW_BYTES / 2**20:,.0f} MB for the map layer, over its "
            f"budget of {budget / 2**20:,.0f} MB (half of FORESTGUARD_MEMORY_MB={settings().memory_mb}): raise the budget, "
            "serve a filtered store, or draw maps with --dask"
        )
    return expected


def build_layer(store: ZoneStore, where: ZoneFilter = ZoneFilter(), data_version: int | None = None,
                budget_bytes: int | None = None) -> ZoneLayer:
    """Read the zones ``where`` selects, batch by batch, into compact rows (use :func:`zone_layer` for the shared copy).

    The columns are allocated once for the zones counted and filled in place; each batch's
    geometry is measured and let go with the batch, so the peak is the layer plus one batch.
    A store whose rows would not fit ``budget_bytes`` (default: half of
    FORESTGUARD_MEMORY_MB) is refused up front with a one-line reason.
    """
    version = store.data_version() if data_version is None else data_version
    expected = check_layer_budget(store, where, budget_bytes)
    columns = _Columns(expected)
    # The store reads (and DuckDB or the network work) in a thread while the previous batch is measured.
    for batch in read_ahead(store.zone_batches(where, columns=_READ_COLUMNS, batch_rows=BUILD_BATCH_ROWS)):
        columns.add(batch)
    base, extents = columns.finish()
    release_unused()  # the batches' buffers: freed, but kept by the allocators until handed back
    return ZoneLayer(redact(store.url), version, where, base, GeometrySource(store), extents=extents)


_DTYPES = {"x": np.float32, "y": np.float32, "size": np.float32, "mercator_area": np.float32, "area_ha": np.float64,
           "classification": np.int8, "year": np.int16, "country": np.int32, "region": np.int32, "source": np.int32,
           "verified": np.bool_, "confidence": np.uint8, "id": np.int32}
_TEXT = ("country", "region", "source")


class _Columns:
    """The layer's columns, allocated for the zones expected and filled a batch at a time."""

    def __init__(self, expected: int) -> None:
        self.arrays = {name: np.empty(expected, dtype=dtype) for name, dtype in _DTYPES.items()}
        self.codes: dict[str, dict[str, int]] = {name: {} for name in _TEXT}
        self.filled = 0
        self.extents: list[pd.DataFrame] = []

    def add(self, table: pa.Table) -> None:
        n = len(table)
        if self.filled + n > len(self.arrays["x"]):  # zones added since they were counted
            grown = max(self.filled + n, int(len(self.arrays["x"]) * 1.25))
            self.arrays = {k: np.resize(a, grown) for k, a in self.arrays.items()}
        measures = ZoneGeometry.from_wkb(table.column("geometry")).measures()
        confidence = pc.cast(table.column("confidence"), pa.float64()).to_numpy(zero_copy_only=False)
        classification = np.full(n, CATEGORIES.index("none"), dtype=np.int8)
        for cls in Classification:
            classification[pc.fill_null(pc.equal(table.column("classification"), cls.stored), False).to_numpy(zero_copy_only=False)] = CATEGORIES.index(cls.value)
        values = {
            "x": measures["x"],
            "y": measures["y"],
            "size": np.maximum(measures["xmax"] - measures["xmin"], measures["ymax"] - measures["ymin"]),
            "mercator_area": measures["mercator_area"],
            "area_ha": pc.cast(table.column("area_ha"), pa.float64()).to_numpy(zero_copy_only=False),
            "classification": classification,
            "year": table.column("year").to_numpy(),
            "verified": table.column("verified").fill_null(False).to_numpy(zero_copy_only=False),
            "confidence": np.where(np.isnan(confidence), NO_CONFIDENCE, np.rint(confidence * 100)),
            "id": table.column("id").to_numpy(),
            **{name: self._codes(name, table.column(name)) for name in _TEXT},
        }
        span = slice(self.filled, self.filled + n)
        for name, array in values.items():
            self.arrays[name][span] = array
        self.filled += n
        self.extents.append(pd.DataFrame({k: measures[k] for k in ("xmin", "ymin", "xmax", "ymax")},
                                         index=pd.Index(table.column("country").to_pandas(), name="country"))
                            .groupby(level=0).agg({"xmin": "min", "ymin": "min", "xmax": "max", "ymax": "max"}))

    def _codes(self, name: str, column: pa.ChunkedArray) -> np.ndarray:
        """Codes into this column's growing dictionary (-1: missing), via the batch's own small dictionary."""
        encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        known = self.codes[name]
        mapping = np.array([known.setdefault(v, len(known)) for v in encoded.dictionary.to_pylist()] + [-1], dtype=np.int32)
        return mapping[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]

    def finish(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rows sorted by Mercator area (one column reordered at a time), text columns as categoricals in sorted order."""
        n = self.filled
        arrays = {k: a[:n] for k, a in self.arrays.items()}
        order = np.argsort(arrays["mercator_area"], kind="stable")
        frame: dict[str, object] = {}
        for name, array in arrays.items():
            ordered = array[order]
            if name in _TEXT:
                names = np.array(list(self.codes[name]), dtype=object)
                rank = np.argsort(names, kind="stable")  # codes in sorted-category order, as pandas shows them
                position = np.empty(len(names) + 1, dtype=np.int32)
                position[rank] = np.arange(len(names), dtype=np.int32)
                position[-1] = -1
                frame[name] = pd.Categorical.from_codes(position[ordered], categories=pd.Index(names[rank], dtype=object), validate=False)
            elif name == "classification":
                frame[name] = pd.Categorical.from_codes(ordered, categories=CATEGORIES, validate=False)
            else:
                frame[name] = ordered
            arrays[name] = None  # type: ignore[assignment] - let go of the unsorted column now
            self.arrays[name] = None  # type: ignore[assignment]
        extents = (pd.concat(self.extents).groupby(level=0).agg({"xmin": "min", "ymin": "min", "xmax": "max", "ymax": "max"})
                   if self.extents else pd.DataFrame(columns=["xmin", "ymin", "xmax", "ymax"]))
        return pd.DataFrame(frame, copy=False), extents


class _LayerCache:
    """One layer per (store, filter) and process, rebuilt when the data version moves on.

    Concurrent sessions asking for the same layer wait for one build instead of each
    reading the store (per-key lock).
    """

    def __init__(self) -> None:
        self._layers: dict[tuple[str, str], ZoneLayer] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, store: ZoneStore, where: ZoneFilter) -> ZoneLayer:
        key = (redact(store.url), where.key())
        version = store.data_version()
        layer = self._layers.get(key)
        if layer is not None and layer.data_version == version:
            return layer
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            layer = self._layers.get(key)
            if layer is None or layer.data_version != version:
                self._layers.pop(key, None)  # the old rows go before the new ones are read: one layer's memory, not two
                layer = build_layer(store, where, version)
                self._layers[key] = layer
            return layer

    def clear(self) -> None:
        with self._guard:
            self._layers.clear()


LAYERS = _LayerCache()


def zone_layer(store: ZoneStore, where: ZoneFilter = ZoneFilter()) -> ZoneLayer:
    """The zones ``where`` selects, prepared once per process and data version and shared."""
    return LAYERS.get(store, where)
