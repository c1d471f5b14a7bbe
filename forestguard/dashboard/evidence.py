"""The dashboard's evidence: the findings of the zones under a click, and the "inside" filter's choices.

What a zone's findings are and how they were measured is :mod:`forestguard.evidence`; this
module only shows them (every text from the data escaped: layer names and sources are the
user's own).
"""

from __future__ import annotations

import html
from typing import Sequence

from ..stores.evidence_records import KIND_LABELS, RESTRICTED_KINDS, ZoneEvidence

#: The "inside" filter: its value → the layer kinds a zone must overlap (none: anywhere).
INSIDE_CHOICES: dict[str, tuple[str, ...]] = {"": (), "restricted": RESTRICTED_KINDS, **{k: (k,) for k in RESTRICTED_KINDS}}
#: Label → value, as the widget shows them.
INSIDE_LABELS: dict[str, str] = {
    "Anywhere": "",
    "Inside protected areas, indigenous lands or embargoes": "restricted",
    **{f"Inside {KIND_LABELS[k]}": k for k in RESTRICTED_KINDS},
}
#: At most this many zones' findings under one click (the largest first).
MAX_ZONES = 5


def findings_html(evidence: Sequence[ZoneEvidence]) -> str:
    """Each zone's stored and suggested class and its findings, with each layer's source and date."""
    blocks = []
    for e in evidence[:MAX_ZONES]:
        if e.suggested is None and not e.findings:
            continue
        suggested = html.escape(e.suggested or "not computed")
        why = f" ({html.escape(e.rule)})" if e.rule else ""
        rows = "".join(
            f"<tr><td>{html.escape(KIND_LABELS.get(f.kind, f.kind))}</td><td>{html.escape(f.layer)}<br><small>{html.escape(f.feature_id)}</small></td>"
            f"<td>{f.overlap_ha:,.2f} ha<br><small>{f.overlap_share:.0%}</small></td>"
            f"<td>{html.escape(f.source)}<br><small>as of <span style='white-space: nowrap'>{f.as_of.isoformat()}</span></small></td>"
            f"<td>{'yes' if f.valid_at_zone_year else 'no'}</td></tr>"
            for f in e.findings
        )
        table = ("<table class='fg-click fg-findings'><thead><tr><th>Layer kind</th><th>Layer, feature</th><th>Overlap</th>"
                 f"<th>Source</th><th>In force in {e.year}</th></tr></thead><tbody>{rows}</tbody></table>") if rows else \
            "<p class='fg-hint'>No overlap with any reference layer.</p>"
        stored = f"classified {html.escape(e.classification)}" if e.classification else "unclassified"  # as the legend says
        blocks.append(
            f"<div class='fg-evidence' data-zone='{e.zone_id}'><p><b>Zone {e.zone_id}</b> ({e.year}): "
            f"{stored}, evidence suggests <b>{suggested}</b>{why}"
            f"{f' · rules {html.escape(e.rules_version)}' if e.rules_version else ''}</p>{table}</div>"
        )
    return "".join(blocks)
