"""``forestguard map`` on the embedded engine: the PNG (dashboard colours, legend), the NetCDF aggregate, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forestguard import stores
from forestguard.cli import main
from forestguard.render.image import COLOR_KEY
from forestguard.render.maps import store_map
from forestguard.schema import Classification
from forestguard.stores.base import ZoneFilter


def test_map_writes_the_png_and_the_aggregate(demo_duckdb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    out, nc = tmp_path / "peru.png", tmp_path / "peru.nc"
    main(["map", "--db", demo_duckdb, "--country", "Peru", "--classification", "illegal", "--width", "400", "--height", "300",
          "--out", str(out), "--aggregate", str(nc)])
    assert f"→ {out}" in capsys.readouterr().out
    with stores.open(demo_duckdb) as store:
        where = ZoneFilter(countries=("Peru",), classifications=(Classification.ILLEGAL,))
        expected = store_map(store, where, 400, 300)
    with xr.open_dataset(nc, engine="h5netcdf") as written:
        np.testing.assert_array_equal(written["area_ha"].values, expected.values)  # the aggregate itself, exactly
        assert written["area_ha"].attrs["units"] == "ha"
    with Image.open(out) as picture:
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert picture.size == (400, 300)
    illegal = tuple(int(COLOR_KEY["illegal"][i : i + 2], 16) for i in (1, 3, 5))
    assert (np.abs(pixels.astype(int) - illegal).sum(axis=1) < 60).sum() > 20  # the zones, in the dashboard's illegal colour


@pytest.mark.parametrize(
    "extra, message",
    [(["--view", "10,20,5,30"], "--view"), (["--view", "a,b"], "--view"), (["--out", "map.jpg"], "PNG"), (["--width", "5"], "--width")],
)
def test_bad_map_options_are_usage_errors(demo_duckdb: str, tmp_path: Path, extra: list[str], message: str, capsys) -> None:
    argv = ["map", "--db", demo_duckdb, "--out", str(tmp_path / "m.png"), *extra]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
