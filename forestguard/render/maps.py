"""The map of a filter, straight from a store, through the cache: what reports and one-off maps draw.

A report kernel is a fresh process: building the zones' layer and compiling datashader's
kernels would cost it seconds. When the dashboard, a pipeline or an earlier report already
drew the same view of the same zones (keyed by store, data version, filter, view and size:
the dashboard's key, see :attr:`ZoneLayer.key`), the cache answers and neither is needed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..config import redact
from ..stores.base import ZoneFilter, ZoneStore
from .image import fit_ranges, view_ranges
from .layer import zone_layer
from .raster import Measure, cached_aggregate, empty_aggregate


def layer_key(store: ZoneStore, where: ZoneFilter, version: int) -> str:
    """The :attr:`ZoneLayer.key` of the zones ``where`` selects, without building the layer."""
    return f"{redact(store.url)}@{version}&{where.key()}"


def zones_extent(store: ZoneStore, where: ZoneFilter, cache) -> tuple[float, float, float, float]:
    """Web Mercator bounds of the zones ``where`` selects, through the cache (a layer only on a miss)."""
    if cache is None:
        return zone_layer(store, where).bounds
    version = store.data_version()
    extent = cache.cached_array("zones", [layer_key(store, where, version), "extent"], version,
                                lambda: np.array(zone_layer(store, where).bounds, dtype=np.float64))
    return tuple(float(v) for v in extent)  # type: ignore[return-value]


def store_map(
    store: ZoneStore,
    where: ZoneFilter,
    width: int,
    height: int,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    measure: Measure = "area_ha",
    cache=None,
) -> xr.DataArray:
    """The map aggregate of the zones ``where`` selects, fitted to them (or to lon/lat ``bounds``).

    From the cache when someone drew it already (no layer, no datashader); otherwise the
    layer is built (once per process) and the aggregate drawn and cached.
    """
    version = store.data_version()
    key = layer_key(store, where, version)
    if bounds is not None:
        x_range, y_range = view_ranges(None, bounds, width, height)  # type: ignore[arg-type]
    elif cache is not None:
        x_range, y_range = fit_ranges(zones_extent(store, where, cache), width, height)
    else:
        x_range, y_range = view_ranges(zone_layer(store, where), None, width, height)
    if cache is None:
        return cached_aggregate(zone_layer(store, where), x_range, y_range, width, height, measure=measure)
    view = [round(float(v), 3) for v in (*x_range, *y_range)]

    def compute() -> np.ndarray:
        return cached_aggregate(zone_layer(store, where), x_range, y_range, width, height, measure=measure).values.astype(np.float32)

    values = cache.cached_array("zones", [key, *view, int(width), int(height), measure], version, compute)
    out = empty_aggregate(x_range, y_range, width, height, measure)
    out.data = np.asarray(values, dtype=np.float64)
    return out
