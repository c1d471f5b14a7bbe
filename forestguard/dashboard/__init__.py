"""The ForestGuard dashboard (Panel). Serve it with ``forestguard serve``."""

from __future__ import annotations

import holoviews as hv

hv.extension("bokeh", logo=False)  # the dashboard's elements are styled for Bokeh

from .viewer import FILTERS, URL_PARAMETERS, ZonesDashboard

__all__ = ["FILTERS", "URL_PARAMETERS", "ZonesDashboard"]
