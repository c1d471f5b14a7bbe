"""Parameterized reports: the computations notebooks call, and the runner that executes them.

In a notebook::

    from forestguard import reports
    from forestguard.reports import plots

    reports.setup()
    store = reports.open_source(source)
    report = reports.country_summary(store, country, years)    # or reports.area_summary(store, area, years)
    reports.key_changes(report)
    plots.area_by_year(report)
    reports.record(report, output_dir)        # stats.json

From Python or the CLI (``forestguard report run``)::

    result = reports.run_report("notebooks/country_report.ipynb", {"country": "Brazil", "years": "2019-2024"})

The runner (papermill, nbconvert) is imported only when used, so report
kernels do not pay for it.
"""

from __future__ import annotations

from typing import Any

from .area import AreaReport, area_summary
from .base import ReportError, SourceInfo, YearRange, open_source, parse_years, resolve_source, source_info
from .country import CountryReport, country_summary
from .notebook import key_changes, record, setup, table, title
from .overview import YearlyOverview, yearly_overview
from .record import STATS_FILE, Reported, stats_record, write_stats

__all__ = [
    "AreaReport",
    "CountryReport",
    "ReportError",
    "ReportResult",
    "Reported",
    "STATS_FILE",
    "SourceInfo",
    "YearRange",
    "YearlyOverview",
    "area_summary",
    "country_summary",
    "key_changes",
    "open_source",
    "parse_years",
    "record",
    "resolve_source",
    "run_report",
    "setup",
    "source_info",
    "stats_record",
    "table",
    "title",
    "write_stats",
    "yearly_overview",
]


def __getattr__(name: str) -> Any:
    if name in ("run_report", "ReportResult"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
