"""Compile datashader's kernels in this process before they are needed.

datashader builds its aggregation kernels with numba on first use in every process (seconds
each: points, polygons, shading, spreading; holoviz/datashader#1318). A server does it once at
``--warm``, before forking workers that inherit the compiled code; a report kernel that finds
its map aggregate in the cache needs none of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from .layer import CATEGORIES


def compile_kernels() -> None:
    """Aggregate, shade and spread a tiny canvas of points and polygons: every kernel the maps use."""
    import datashader as ds
    import geopandas as gpd

    from .image import shade_image
    from .raster import _add, canvas, empty_aggregate

    cvs = canvas((0.0, 10.0), (0.0, 10.0), 10, 10)
    out = empty_aggregate((0.0, 10.0), (0.0, 10.0), 10, 10)
    points = pd.DataFrame({"x": np.array([1.0, 5.0], dtype=np.float32), "y": np.array([1.0, 5.0], dtype=np.float32),
                           "area_ha": [1.0, 2.0],
                           "classification": pd.Categorical(["legal", "illegal"], categories=CATEGORIES)})
    _add(out.data, cvs.points(points, "x", "y", agg=ds.by("classification", ds.sum("area_ha"))))
    _add(out.data, cvs.points(points, "x", "y", agg=ds.by("classification", ds.count())))
    polygons = gpd.GeoDataFrame({"weight": [1.0], "classification": pd.Categorical(["none"], categories=CATEGORIES)},
                                geometry=[shapely.box(2.0, 2.0, 8.0, 8.0)])
    _add(out.data, cvs.polygons(polygons, geometry="geometry", agg=ds.by("classification", ds.sum("weight"))))
    shade_image(out)
