"""``forestguard map``: the map of a filtered view as a PNG (and its aggregate as NetCDF), embedded or on Dask."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import click

from ..config import redact
from ..errors import UserError
from .options import dask_option, db_option, filter_options, zone_filter


def _view(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not (-180 <= values[0] < values[2] <= 180 and -90 <= values[1] < values[3] <= 90):
        raise click.BadParameter(f"{text!r} is not XMIN,YMIN,XMAX,YMAX in degrees (west < east, south < north)", param_hint="--view")
    return values  # type: ignore[return-value]


def _written(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling: a failed write leaves no half file."""
    path = path.absolute()
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@click.command("map")
@db_option
@filter_options
@click.option("--view", default=None, metavar="XMIN,YMIN,XMAX,YMAX", help="The view in lon/lat degrees. Default: fitted to the zones selected.")
@click.option("--width", type=click.IntRange(16, 10_000), default=1600, show_default=True, help="Image width in pixels.")
@click.option("--height", type=click.IntRange(16, 10_000), default=1000, show_default=True, help="Image height in pixels.")
@click.option("--measure", type=click.Choice(["area_ha", "zones"]), default="area_ha", show_default=True, help="What each pixel sums.")
@click.option("--out", required=True, metavar="FILE.png", help="The map: zones shaded as on the dashboard, over country outlines, with a legend.")
@click.option("--aggregate", "aggregate_out", default=None, metavar="FILE.nc",
              help="Also write the aggregate (per pixel and classification, Web Mercator x/y) as NetCDF.")
@dask_option
def map_command(db, view, width, height, measure, out, aggregate_out, dask, **filters):
    """Draw the zones a filter selects as a PNG, with the dashboard's colours and legend.

    Zones smaller than a few pixels are area-weighted points, bigger ones polygons
    (datashader). With --dask a snapshot is drawn partition by partition on a Dask
    cluster; only the partitions that meet the view are read.

    \b
    Example:
      forestguard map --country Brazil --from 2019 --to 2024 --out brazil.png
      forestguard map --db snapshot:s3://my-bucket/snapshots/3fa94c0e12d5b8a1 --country Brazil --width 1600 --height 1000 \\
          --out brazil.png --aggregate brazil.nc --dask tcp://scheduler:8786
    """
    where = zone_filter(**filters)
    bounds = _view(view)
    if not out.lower().endswith(".png"):
        raise click.BadParameter(f"{out!r}: the map is written as PNG (FILE.png)", param_hint="--out")
    from ..distributed import open_for_reading
    from ..render.image import map_picture
    from ..render.maps import store_map
    from ..render.raster import totals

    started = time.perf_counter()
    with open_for_reading(db, dask) as store:
        agg = store_map(store, where, width, height, bounds=bounds, measure=measure)
        engine = store.engine
    _written(Path(out), lambda tmp: map_picture(agg).save(tmp, format="PNG"))
    if aggregate_out:
        _written(Path(aggregate_out), lambda tmp: _netcdf(agg, tmp))
    drawn = totals(agg)
    unit = "ha" if measure == "area_ha" else "zones"
    parts = f", {agg.attrs['partitions']} partition(s)" if "partitions" in agg.attrs else ""
    click.echo(
        f"map: {sum(drawn.values()):,.2f} {unit} drawn ({agg.attrs.get('points', 0):,} zones as points, {agg.attrs.get('polygons', 0):,} as polygons) "
        f"by {engine}{parts} at {width}×{height} → {redact(out)}{' and ' + aggregate_out if aggregate_out else ''} ({time.perf_counter() - started:.1f} s)"
    )


def _netcdf(agg, path: Path) -> None:
    """The aggregate as NetCDF-4 (h5netcdf): values per pixel centre (EPSG:3857 metres) and classification."""
    try:
        import h5netcdf  # noqa: F401
        import h5py  # noqa: F401
    except ImportError:
        raise UserError("--aggregate needs h5netcdf and h5py: pip install 'forestguard[scale]'") from None
    data = agg.copy()
    data.attrs = {"crs": "EPSG:3857", "measure": agg.attrs["measure"], "units": "ha" if agg.attrs["measure"] == "area_ha" else "zones",
                  "x_range": list(agg.attrs["x_range"]), "y_range": list(agg.attrs["y_range"])}
    data.to_dataset(name=str(agg.name or agg.attrs["measure"])).to_netcdf(path, engine="h5netcdf")
