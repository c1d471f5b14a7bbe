"""The evidence rules: a TOML file the user can read and change (``rules.toml`` beside this module).

Zone rules turn a zone's findings into a suggested class (first match wins); plot rules turn
a plot's clearing and overlaps into a risk verdict (the most severe match wins, every match
gives a reason). The file is checked whole when it is read: an unknown key, kind, measure,
class or verdict is one line naming the file and the rule. ``version`` names the rules; their
``sha256`` (of the parsed content, so comments do not count) tells whether a file changed
under a version already used.
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import settings
from ..errors import UserError
from ..stores.evidence_records import KINDS, SUGGESTIONS, VERDICTS

#: Plot measures a rule may name (``overlap_ha.KIND`` and the like are checked against :data:`KINDS`).
PLOT_MEASURES = ("cleared_after_cutoff_ha", "cleared_after_cutoff_zones", "undated_zones")
PER_KIND_MEASURES = ("overlap_ha", "overlap_share", "layers")
_REASON_FIELDS = {"value", "cutoff", "zones", "features"}


class RulesError(UserError):
    """A rules file that cannot be used."""


@dataclass(frozen=True)
class ZoneRule:
    name: str
    kinds: tuple[str, ...]
    valid_at_zone_year: bool | None  #: None: any
    min_ha: float
    min_share: float
    suggest: str


@dataclass(frozen=True)
class PlotRule:
    name: str
    measure: str
    above: float | None
    below: float | None
    verdict: str
    reason: str

    def matches(self, value: float) -> bool:
        return (self.above is None or value > self.above) and (self.below is None or value < self.below)


@dataclass(frozen=True)
class Rules:
    """Parsed, checked rules."""

    version: str
    sha256: str
    default: str
    zone_rules: tuple[ZoneRule, ...]
    plot_rules: tuple[PlotRule, ...]
    low_reason: str
    path: str

    # -- zones ---------------------------------------------------------------------------------
    def suggest(self, findings: pd.DataFrame) -> pd.DataFrame:
        """Each zone's suggestion from its findings (columns zone_id, kind, overlap_ha, overlap_share, valid_at_zone_year).

        Returns zone_id, suggested, rule (None for the default) for every zone that has a finding.
        """
        zones = np.unique(findings["zone_id"].to_numpy()) if len(findings) else np.zeros(0, dtype=np.int64)
        suggested = np.full(len(zones), self.default, dtype=object)
        rule = np.full(len(zones), None, dtype=object)
        decided = np.zeros(len(zones), dtype=bool)
        if len(findings):
            kind = findings["kind"].to_numpy()
            valid = findings["valid_at_zone_year"].to_numpy(dtype=bool)
            at = np.searchsorted(zones, findings["zone_id"].to_numpy())
            for candidate in self.zone_rules:
                chosen = np.isin(kind, candidate.kinds)
                if candidate.valid_at_zone_year is not None:
                    chosen &= valid == candidate.valid_at_zone_year
                hectares = np.bincount(at[chosen], weights=findings["overlap_ha"].to_numpy()[chosen], minlength=len(zones))
                share = np.bincount(at[chosen], weights=findings["overlap_share"].to_numpy()[chosen], minlength=len(zones))
                hit = ~decided & (hectares > candidate.min_ha) & (share >= candidate.min_share - 1e-12)
                suggested[hit], rule[hit] = candidate.suggest, candidate.name
                decided |= hit
        return pd.DataFrame({"zone_id": zones, "suggested": suggested, "rule": rule})

    # -- plots ---------------------------------------------------------------------------------
    def verdict(self, measures: Mapping[str, float], details: Mapping[str, Any]) -> tuple[str, list[str]]:
        """A plot's verdict and reasons from its ``measures`` (see :data:`PLOT_MEASURES`); ``details`` fill the reasons."""
        worst, reasons = 0, []
        for candidate in self.plot_rules:
            value = measures[candidate.measure]
            if candidate.matches(value):
                worst = max(worst, VERDICTS.index(candidate.verdict))
                kind = candidate.measure.partition(".")[2]
                features = details.get("features", {}).get(kind, "")
                reasons.append(candidate.reason.format(value=value, cutoff=details["cutoff"], zones=details["zones"], features=features))
        if not reasons:
            reasons.append(self.low_reason.format(value=0, cutoff=details["cutoff"], zones=details["zones"], features=""))
        return VERDICTS[worst], reasons


def default_rules_path() -> str:
    """The rules in use when none are named: ``FORESTGUARD_EVIDENCE_RULES``, else the shipped file."""
    configured = settings().evidence_rules
    return configured or str(resources.files("forestguard.evidence").joinpath("rules.toml"))


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and check a rules file (default: :func:`default_rules_path`)."""
    label = str(path or default_rules_path())
    try:
        document = tomllib.loads(Path(label).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{label}: no such rules file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{label}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{label}: not valid TOML ({exc})") from None
    return parse_rules(document, label)


def parse_rules(document: dict[str, Any], label: str) -> Rules:
    _keys(document, {"version", "zones", "plots"}, label, "the file")
    version = document.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RulesError(f"{label}: needs a `version` (text), e.g. version = \"1\"")
    zones = _table(document, "zones", label)
    _keys(zones, {"default", "rule"}, label, "[zones]")
    default = _choice(zones.get("default", "undetermined"), SUGGESTIONS, label, "[zones] default")
    zone_rules = tuple(_zone_rule(r, f"zones.rule[{i}]", label) for i, r in enumerate(_list(zones, "rule", label, "zones")))
    plots = _table(document, "plots", label)
    _keys(plots, {"low_reason", "rule"}, label, "[plots]")
    low_reason = plots.get("low_reason", "no clearing after {cutoff} and no restricted overlap")
    _check_reason(low_reason, label, "[plots] low_reason")
    plot_rules = tuple(_plot_rule(r, f"plots.rule[{i}]", label) for i, r in enumerate(_list(plots, "rule", label, "plots")))
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)
    return Rules(version.strip(), hashlib.sha256(canonical.encode()).hexdigest(), default, zone_rules, plot_rules, low_reason, label)


def _zone_rule(entry: Any, where: str, label: str) -> ZoneRule:
    if not isinstance(entry, dict):
        raise RulesError(f"{label}: {where}: is not a table")
    _keys(entry, {"name", "kinds", "valid_at_zone_year", "min_ha", "min_share", "suggest"}, label, where)
    kinds = entry.get("kinds")
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not kinds:
        raise RulesError(f"{label}: {where}: `kinds` must list layer kinds ({', '.join(KINDS)})")
    for kind in kinds:
        _choice(kind, KINDS, label, f"{where} kinds")
    valid = entry.get("valid_at_zone_year", "any")
    if valid not in (True, False, "any"):
        raise RulesError(f"{label}: {where}: `valid_at_zone_year` must be true, false or \"any\", not {valid!r}")
    return ZoneRule(
        name=_name(entry, where, label),
        kinds=tuple(kinds),
        valid_at_zone_year=None if valid == "any" else bool(valid),
        min_ha=_number(entry.get("min_ha", 0.0), label, f"{where} min_ha"),
        min_share=_number(entry.get("min_share", 0.0), label, f"{where} min_share"),
        suggest=_choice(entry.get("suggest"), SUGGESTIONS, label, f"{where} suggest"),
    )


def _plot_rule(entry: Any, where: str, label: str) -> PlotRule:
    if not isinstance(entry, dict):
        raise RulesError(f"{label}: {where}: is not a table")
    _keys(entry, {"name", "measure", "above", "below", "verdict", "reason"}, label, where)
    measure = entry.get("measure")
    base, _, kind = str(measure).partition(".")
    if not ((measure in PLOT_MEASURES) or (base in PER_KIND_MEASURES and kind in KINDS)):
        listed = ", ".join([*PLOT_MEASURES, *(f"{m}.KIND" for m in PER_KIND_MEASURES)])
        raise RulesError(f"{label}: {where}: unknown measure {measure!r}; use one of {listed} (KIND: {', '.join(KINDS)})")
    if "above" not in entry and "below" not in entry:
        raise RulesError(f"{label}: {where}: needs `above` or `below` (the threshold the measure is compared with)")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise RulesError(f"{label}: {where}: needs a `reason` (text)")
    _check_reason(reason, label, where)
    return PlotRule(
        name=_name(entry, where, label),
        measure=str(measure),
        above=_number(entry["above"], label, f"{where} above") if "above" in entry else None,
        below=_number(entry["below"], label, f"{where} below") if "below" in entry else None,
        verdict=_choice(entry.get("verdict"), VERDICTS, label, f"{where} verdict"),
        reason=reason,
    )


def _check_reason(text: Any, label: str, where: str) -> None:
    if not isinstance(text, str):
        raise RulesError(f"{label}: {where}: must be text")
    try:
        named = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        raise RulesError(f"{label}: {where}: {exc}") from None
    unknown = sorted(n.split(".")[0].split("[")[0] for n in named if n.split(".")[0].split("[")[0] not in _REASON_FIELDS)
    if unknown:
        raise RulesError(f"{label}: {where}: unknown field {{{unknown[0]}}}; reasons may use {', '.join('{' + f + '}' for f in sorted(_REASON_FIELDS))}")


def _keys(entry: dict, allowed: set[str], label: str, where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise RulesError(f"{label}: {where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _table(document: dict, name: str, label: str) -> dict:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise RulesError(f"{label}: [{name}] must be a table")
    return value


def _list(table: dict, name: str, label: str, where: str) -> list:
    value = table.get(name, [])
    if not isinstance(value, list):
        raise RulesError(f"{label}: {where}.{name} must be an array of tables ([[{where}.{name}]])")
    return value


def _name(entry: dict, where: str, label: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{label}: {where}: needs a `name` (text)")
    return name


def _choice(value: Any, allowed: tuple[str, ...], label: str, where: str) -> str:
    if value not in allowed:
        raise RulesError(f"{label}: {where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _number(value: Any, label: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise RulesError(f"{label}: {where}: must be a number, not {value!r}")
    return float(value)
