"""From a pipeline file and its source to the list of report items, each with a run key.

A run key is a hash of what makes a report what it is: the notebook's code,
its parameters and the exact data it reads (engine, URL, data version,
snapshot id). Same key, same report: an item whose completed output carries
its key is skipped, and a change to any of the three re-runs it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Iterable

import nbformat

from ..errors import UserError
from ..reports.base import SourceInfo, parse_years
from ..reports.runner import coerce_parameters, declared_parameters, notebook_hash, report_name
from ..stores.base import ZoneFilter, ZoneStore
from .spec import PipelineSpec


@dataclass(frozen=True)
class SourceFacts:
    """What the grid needs to know about the source: its countries, years and which pairs have zones."""

    countries: tuple[str, ...]
    years: tuple[int, ...]
    pairs: frozenset[tuple[str, int]]

    @classmethod
    def of(cls, store: ZoneStore) -> "SourceFacts":
        frame = store.aggregate(ZoneFilter(), ["country", "year"])
        pairs = frozenset((str(c), int(y)) for c, y in zip(frame["country"], frame["year"], strict=True))
        return cls(tuple(sorted({c for c, _ in pairs})), tuple(sorted({y for _, y in pairs})), pairs)


@dataclass(frozen=True)
class Item:
    """One report of a pipeline. Picklable: it is what executors ship to workers."""

    notebook: str
    notebook_json: str
    parameters: dict[str, Any]
    name: str
    key: str


def _years(rule: dict[str, Any], facts: SourceFacts) -> list[int]:
    years = [y for y in facts.years if rule.get("from", y) <= y <= rule.get("to", y)]
    return years[-rule["last"]:] if rule.get("last") else years


def values(rule: Any, facts: SourceFacts) -> list[Any]:
    """The values one grid entry stands for."""
    if isinstance(rule, list):
        return list(rule)
    if not isinstance(rule, dict):
        return [rule]
    if "range" in rule:
        span = parse_years(str(rule["range"]))
        return list(range(span.first or facts.years[0], (span.last or facts.years[-1]) + 1))
    if rule.get("each") == "country":
        excluded = set(rule.get("except") or ())
        return [c for c in facts.countries if c not in excluded]
    years = _years(rule, facts)
    if "span" in rule:
        return [f"{years[0]}-{years[-1]}"] if years else []
    return years


def expand(grid: dict[str, Any], facts: SourceFacts) -> list[dict[str, Any]]:
    """Every combination of the grid's values; country × year pairs without zones are left out.

    A report on nothing is not worth a failure in the summary, so when one
    parameter ranges over countries and another over single years, only the
    pairs the source has zones for become items.
    """
    names = list(grid)
    combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(values(grid[n], facts) for n in names))]
    country_keys = [n for n in names if isinstance(grid[n], dict) and grid[n].get("each") == "country"]
    year_keys = [n for n in names if isinstance(grid[n], dict) and (grid[n].get("each") == "year" or "range" in grid[n])]
    if not (country_keys and year_keys):
        return combos
    return [c for c in combos if all((c[ck], int(c[yk])) in facts.pairs for ck in country_keys for yk in year_keys)]


def run_key(notebook_sha: str, parameters: dict[str, Any], source: SourceInfo) -> str:
    canonical = json.dumps({"notebook": notebook_sha, "parameters": parameters, "source": source.to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def plan(spec: PipelineSpec, facts: SourceFacts, source: SourceInfo) -> list[Item]:
    """The pipeline's items in a stable order, parameters checked against each notebook."""
    items: list[Item] = []
    for report in spec.reports:
        nb = nbformat.read(report.notebook, as_version=4)
        declared = declared_parameters(nb)
        sha = notebook_hash(nb)
        text = nbformat.writes(nb)
        for combo in expand(report.parameters, facts):
            parameters = coerce_parameters(declared, combo)
            name = report_name(report.notebook, parameters)
            items.append(Item(str(report.notebook), text, parameters, name, run_key(sha, parameters, source)))
    _check_unique(items)
    return items


def _check_unique(items: Iterable[Item]) -> None:
    seen: dict[str, Item] = {}
    for item in items:
        if item.name in seen:
            raise UserError(f"two reports would share the folder {item.name!r}: {seen[item.name].parameters} and {item.parameters}")
        seen[item.name] = item
