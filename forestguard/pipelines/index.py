"""``index.html`` of a pipeline's output: every report, its status and a link, in one offline page."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Mapping, Sequence

from .execute import Outcome

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
th { background: #f6f6f6; }
.ok { color: #007a55; } .failed { color: #c0392b; font-weight: 600; } .skipped { color: #666; }
.error { color: #c0392b; font-size: 12px; } small { color: #666; }
"""


def _parameters(parameters: dict) -> str:
    return ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in parameters.items())


def index_html(title: str, outcomes: Sequence[Outcome], counts: Mapping[str, int], source: str) -> str:
    """The page of a run named ``title`` on ``source``; links are relative, so it works from the folder, a zip or the S3 prefix alike."""
    rows = []
    for outcome in sorted(outcomes, key=lambda o: o.name):
        link = f'<a href="{escape(outcome.html)}">{escape(outcome.name)}</a>' if outcome.html else escape(outcome.name)
        extras = ""
        if outcome.html:
            folder = escape(outcome.name)
            extras = f' <small>(<a href="{folder}/{folder}.ipynb">notebook</a>, <a href="{folder}/stats.json">stats.json</a>)</small>'
            if outcome.status == "failed":
                extras = f' <small>(<a href="{folder}/{folder}.ipynb">notebook</a>)</small>'
        error = f'<div class="error">{escape(outcome.error)}</div>' if outcome.error else ""
        status = "complete (earlier run)" if outcome.status == "skipped" else outcome.status
        rows.append(
            f"<tr><td>{link}{extras}{error}</td><td>{_parameters(outcome.parameters)}</td>"
            f'<td class="{outcome.status}">{status}</td><td>{outcome.duration_s:.1f} s</td></tr>'
        )
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} — ForestGuard reports</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>{counts['ok']} ok · {counts['failed']} failed · {counts['skipped']} complete from earlier runs · source {escape(source)} · updated {when}</p>
<table><thead><tr><th>report</th><th>parameters</th><th>status</th><th>duration</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
