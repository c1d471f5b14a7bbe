"""An evidence dossier for an area or a file of plots: the numbers behind ``notebooks/evidence_report.ipynb``.

For an area (a saved area's name or a file): the zones meeting it by suggested class and by
stored class, those inside protected areas, indigenous lands or embargoes, and each zone's
findings with their layers' sources and dates. For plots (``plots=FILE``, ``id_field``): the
same for the plots' union, and each plot's risk (:func:`forestguard.evidence.plots.plot_risk`).
Every statistic is recorded with the ``forestguard stats`` command that prints it, the plots'
table with the ``forestguard evidence plots`` command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ..areas import Area, area_of, read_plots
from ..errors import UserError
from ..evidence.layers import parse_date
from ..evidence.plots import PlotsReport, plot_risk
from ..stores.evidence_records import KIND_LABELS, RESTRICTED_KINDS
from ..evidence.rules import Rules, load_rules
from ..stores.base import ZoneFilter, ZoneStore
from .base import ReportError, SourceInfo, source_info
from .record import Reported, reported
from .tables import records

#: At most this many zones' findings are listed (the largest overlaps first).
MAX_FINDING_ROWS = 200


@dataclass
class EvidenceReport:
    """The numbers of one evidence dossier. Build it with :func:`evidence_summary`."""

    source: SourceInfo
    area: Area  #: the area, or the union of the plots (framing the map, filtering the statistics)
    rules: Rules
    cutoff: date
    by_suggested: Reported
    inside_restricted: Reported
    findings: pd.DataFrame  #: one row per finding of a zone meeting the area, largest overlaps first
    plots_file: str = ""
    id_field: str = ""
    plots: PlotsReport | None = None
    rules_file: str = ""  #: the rules file given (empty: the default)

    kind = "evidence_report"

    @property
    def where(self) -> ZoneFilter:
        return ZoneFilter(area=self.area)

    @property
    def period(self) -> str:
        return "every year"

    @property
    def label(self) -> str:
        return f"Evidence — {Path(self.plots_file).name + ' (plots)' if self.plots_file else self.area.name}"

    @property
    def parameters(self) -> dict[str, Any]:
        if self.plots_file:
            return {"plots": self.plots_file, "id_field": self.id_field, "cutoff": self.cutoff.isoformat(), "rules_version": self.rules.version}
        return {"area": self.area.name, "rules_version": self.rules.version}

    def reported(self) -> dict[str, Reported]:
        return {"by_suggested": self.by_suggested, "inside_restricted": self.inside_restricted}

    def plots_command(self, url: str) -> str:
        """The ``forestguard evidence plots`` invocation whose JSON is the plots' table."""
        return shlex.join(["forestguard", "evidence", "plots", self.plots_file, "--id", self.id_field, "--cutoff", self.cutoff.isoformat(),
                           "--db", url, *(["--rules", self.rules_file] if self.rules_file else []), "--format", "json"])

    def plots_frame(self) -> pd.DataFrame:
        """One row per plot: verdict, clearing after the cut-off, overlaps by kind, reasons."""
        if self.plots is None:
            return pd.DataFrame()
        rows = []
        for p in self.plots.plots:
            rows.append({"plot": p.plot_id, "verdict": p.verdict, "cleared_after_cutoff_ha": p.cleared_after_cutoff_ha,
                         "cleared_zones": p.cleared_after_cutoff_zones, **{f"{k}_ha": v for k, v in p.overlaps.items()},
                         "reasons": "; ".join(p.reasons)})
        return pd.DataFrame(rows)

    def plots_table(self) -> Any:
        """The plots' table for the report, or a line saying none were given."""
        from IPython.display import Markdown

        from .notebook import table

        if self.plots is None:
            return Markdown("No plots given (`plots=FILE`): the dossier covers the area's zones.")
        return table(self.plots_frame(), labels={"cleared_after_cutoff_ha": f"cleared after {self.cutoff.isoformat()} (ha)"})

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        out = {"findings": records(self.findings), "area": [self.area.describe()]}
        if self.plots is not None:
            out["plots"] = self.plots.to_dict()["plots"]
            out["plots_command"] = [{"command": self.plots_command(self.source.url)}]
        return out

    def key_changes(self) -> list[str]:
        rows = self.by_suggested.result.rows
        zones = sum(r["zones"] for r in rows)
        by = {r["suggested"]: r for r in rows}
        lines = [f"{zones:,} zones meet {self.area.name!r} ({self.area.area_ha:,.0f} ha); evidence suggests "
                 + ", ".join(f"{s or 'not computed'} {by[s]['zones']:,}" for s in by) + f" (rules {self.rules.version})."]
        inside = sum(r["zones"] for r in self.inside_restricted.result.rows)
        kinds = ", ".join(KIND_LABELS[k] for k in RESTRICTED_KINDS)
        lines.append(f"{inside:,} of them lie partly inside {kinds}.")
        if self.plots is not None:
            verdicts = self.plots.verdicts()
            lines.append(f"Plots, cut-off {self.cutoff.isoformat()}: " + ", ".join(f"{v} {n:,}" for v, n in verdicts.items()) + ".")
        return lines


def _findings(store: ZoneStore, where: ZoneFilter) -> pd.DataFrame:
    ids = store.zones_arrow(where, columns=["id"]).column("id").to_pylist()
    rows = []
    for e in store.zones_evidence(ids):
        for f in e.findings:
            rows.append({"zone": e.zone_id, "year": e.year, "classification": e.classification or "", "suggested": e.suggested or "",
                         "layer": f.layer, "kind": f.kind, "feature": f.feature_id, "overlap_ha": round(f.overlap_ha, 2),
                         "overlap_share": f.overlap_share, "in_force": f.valid_at_zone_year, "source": f.source, "as_of": f.as_of.isoformat()})
    frame = pd.DataFrame(rows, columns=["zone", "year", "classification", "suggested", "layer", "kind", "feature", "overlap_ha",
                                        "overlap_share", "in_force", "source", "as_of"])
    return frame.sort_values(["overlap_ha", "zone"], ascending=[False, True]).head(MAX_FINDING_ROWS).reset_index(drop=True)


def evidence_summary(store: ZoneStore, area: str = "", plots: str = "", id_field: str = "plot_id", cutoff: str = "2020-12-31",
                     rules: str = "") -> EvidenceReport:
    """Everything an evidence dossier shows, or a :class:`ReportError` saying why there is nothing to show."""
    if bool(area) == bool(plots):
        raise ReportError("give either area=NAME (or FILE) or plots=FILE, not both and not neither")
    try:
        chosen_rules = load_rules(rules or None)
        when = parse_date(cutoff, "cutoff")
        plot_areas = read_plots(plots, id_field) if plots else None
        chosen = area_of(store, plots or area)  # the plots' union, as `stats --area FILE` reads it
        store.require_evidence()
        if store.evidence_state() is None:
            raise ReportError(f"no evidence in {source_info(store).url}: run 'forestguard evidence compute' first")
        where = ZoneFilter(area=chosen)
        return EvidenceReport(
            source=source_info(store),
            area=chosen,
            rules=chosen_rules,
            cutoff=when,
            by_suggested=reported(store, where, ("suggested",), plots or area),
            inside_restricted=reported(store, where.with_(overlaps=RESTRICTED_KINDS), ("classification",), plots or area),
            findings=_findings(store, where),
            plots_file=plots,
            id_field=id_field if plots else "",
            plots=plot_risk(store, plot_areas, when, chosen_rules) if plot_areas is not None else None,
            rules_file=rules,
        )
    except ReportError:
        raise
    except UserError as exc:
        raise ReportError(str(exc)) from None
