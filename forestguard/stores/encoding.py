"""How zones are encoded for the stores: geometry as 2-D little-endian WKB, shared by both engines' loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from ..sources import SOURCE_WKB


def zone_wkb(zones: pd.DataFrame) -> pa.Array:
    """The zones' geometries as 2-D little-endian WKB, for the stores.

    Taken from the file (:data:`SOURCE_WKB`) where validation left a geometry as
    it was read, which spares a shapely → WKB encoding per zone (~2 s per million);
    encoded by shapely for the others (repaired, exploded, made 2-D, or read from
    GeoJSON).
    """
    geometries = np.asarray(zones.geometry.values)
    if SOURCE_WKB not in zones:
        return pa.array(shapely.to_wkb(geometries, output_dimension=2, byte_order=1), pa.binary())
    wkb = pa.array(zones[SOURCE_WKB].array, pa.binary())
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if wkb.null_count:
        missing = wkb.is_null().to_numpy(zero_copy_only=False)
        encoded = shapely.to_wkb(geometries[missing], output_dimension=2, byte_order=1)
        wkb = pc.replace_with_mask(wkb, pa.array(missing), pa.array(encoded, pa.binary()))
    return wkb
