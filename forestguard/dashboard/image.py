"""The map image as Bokeh takes it, packed once per view and shared by every session.

HoloViews' RGB plot stacks and packs the channels of an ``hv.RGB`` for each plot:
one 4-bytes-a-pixel copy per session and view (2.2 MB at 1000×560), most of what a
dashboard session costs in memory. :class:`SharedRGB` carries the packed array itself;
its plot hands that same array to every session's data source.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import param
from holoviews.plotting.bokeh.raster import RGBPlot


class SharedRGB(hv.RGB):
    """``hv.RGB`` with the image already packed for Bokeh's ``image_rgba``."""

    packed = param.Array(default=None, precedence=-1, doc="uint32 (height, width), bottom row first; read-only, shared")


class SharedRGBPlot(RGBPlot):
    """Uses the element's packed array as is: no copy per session."""

    def get_data(self, element, ranges, style):
        packed = getattr(element, "packed", None)
        if packed is None or self.invert_axes or self.static_source:
            return super().get_data(element, ranges, style)
        if "alpha" in style:
            style["global_alpha"] = style["alpha"]
        data = packed_data(packed, element.bounds.lbrt())
        return data, dict(image="image", x="x", y="y", dw="dw", dh="dh"), style

    def show(self, packed: np.ndarray, bounds: tuple[float, float, float, float]) -> None:
        """Put a new image into the plot's data source: what HoloViews' update of the frame ends in, without the rest of it."""
        self.handles["source"].data = packed_data(packed, bounds)


def packed_data(packed: np.ndarray, bounds: tuple[float, float, float, float]) -> dict[str, list]:
    """The ``image_rgba`` columns for a packed image covering ``bounds`` (left, bottom, right, top)."""
    left, bottom, right, top = bounds
    return dict(image=[packed], x=[left], y=[bottom], dw=[right - left], dh=[top - bottom])


hv.Store.register({SharedRGB: SharedRGBPlot}, "bokeh")
