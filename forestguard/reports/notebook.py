"""What report notebooks call to set up and to show text and tables.

Notebooks stay a list of calls (no SQL, no logic) so that a researcher can
reorder or drop sections without breaking the numbers underneath.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from typing import Any

import pandas as pd
from IPython.display import Markdown

from .record import STATS_FILE, Recordable, write_stats


def _percent(value: float) -> str:
    """Whole percents, but one decimal below 1 % (a small non-zero share is "0.4%", not a misleading "0%")."""
    return f"{value:.1%}" if 0 < abs(value) < 0.01 else f"{value:.0%}"


def _change(value: float) -> str:
    return ("+" if value > 0 else "") + _percent(value)


#: Column formats by name (suffix) for report tables, first match wins.
_FORMATS: list[tuple[str, Any]] = [
    ("change_share", _change),
    ("share", _percent),
    ("_ha", "{:,.0f}"),
    ("mean_confidence", "{:.2f}"),
    ("zones", "{:,.0f}"),
]


def setup() -> None:
    """Prepare a report kernel: BokehJS and Panel's CSS go inline, so the exported HTML opens offline."""
    import panel as pn

    from ..render.holoviews import bokeh_extension

    pn.config.inline = True
    bokeh_extension(inline=True)
    # Chart code is ours, not the reader's: library deprecation notices would only clutter a report.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def title(report: Recordable, subtitle: str) -> Markdown:
    """The report heading with what was read, so a printed page says where its numbers come from."""
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return Markdown(f"# {report.label}\n\n{subtitle}\n\n<small>Source: {report.source.label} · generated {when}</small>")


def key_changes(report: Recordable) -> Markdown:
    """The generated summary as a bullet list."""
    return Markdown("\n".join(f"- {line}" for line in report.key_changes()))


def table(frame: pd.DataFrame, labels: dict[str, str] | None = None) -> Any:
    """A report table: numbers formatted by column name, no index, optional column labels."""
    formats = {}
    for column in frame.columns:
        for suffix, fmt in _FORMATS:
            if str(column).endswith(suffix):
                formats[column] = fmt
                break
    styler = frame.style.format(formats, na_rep="–", escape="html").hide(axis="index")
    if labels:
        styler = styler.relabel_index([labels.get(c, c) for c in frame.columns], axis="columns")
    return styler


def record(report: Recordable, output_dir: str | os.PathLike[str] | None) -> Markdown:
    """Write ``stats.json`` (when ``output_dir`` is set) and say so in the report."""
    path = write_stats(report, output_dir)
    if path is None:
        return Markdown(f"<small>Interactive run: set `output_dir` to record these numbers in `{STATS_FILE}`.</small>")
    return Markdown(
        f"<small>The numbers above are recorded in `{STATS_FILE}` with the source they were read from "
        f"({report.source.label}); each statistic lists the `forestguard stats` command that reproduces it.</small>"
    )
