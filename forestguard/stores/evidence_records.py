"""What the stores keep for evidence: reference layers with their provenance, findings, suggestions.

Plain records and Arrow schemas only (no store, no geometry work), so the engines can name
them without importing the evidence machinery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa

#: Kinds of reference layer, and what a feature of each carries besides its polygon.
KINDS: tuple[str, ...] = ("protected_area", "indigenous_land", "property", "authorization", "embargo")
#: The kinds whose overlap the dashboard's "inside" filter offers (where clearing is not allowed).
RESTRICTED_KINDS: tuple[str, ...] = ("protected_area", "indigenous_land", "embargo")
KIND_LABELS: dict[str, str] = {
    "protected_area": "protected areas",
    "indigenous_land": "indigenous lands",
    "property": "registered properties",
    "authorization": "authorizations",
    "embargo": "embargoes",
}

#: A zone's suggested class: the stored classes' English names, or no conclusion.
UNDETERMINED = "undetermined"
SUGGESTIONS: tuple[str, ...] = ("legal", "illegal", UNDETERMINED)
#: A plot's risk verdicts, least severe first.
VERDICTS: tuple[str, ...] = ("low", "more_info_needed", "high")

#: Longest layer name, source and feature id (stored and shown literally).
NAME_MAX_CHARS = 200

#: One row per reference feature, as stores take and give them.
FEATURES_SCHEMA = pa.schema(
    [
        ("feature_id", pa.string()),
        ("valid_from", pa.date32()),
        ("valid_to", pa.date32()),
        ("geometry", pa.binary()),  # canonical MultiPolygon WKB (forestguard.areas.canonical_wkb)
    ]
)
#: One row per (zone, reference feature) whose shapes share area.
FINDINGS_SCHEMA = pa.schema(
    [
        ("zone_id", pa.int32()),
        ("layer", pa.string()),
        ("layer_version", pa.int64()),
        ("feature_id", pa.string()),
        ("overlap_ha", pa.float64()),
        ("overlap_share", pa.float64()),
        ("valid_at_zone_year", pa.bool_()),
    ]
)
#: One row per zone evidence was computed for.
EVIDENCE_SCHEMA = pa.schema(
    [
        ("zone_id", pa.int32()),
        ("zone_year", pa.int32()),
        ("geometry_hash", pa.string()),  # the engine's own hash of the zone's geometry when it was read
        ("suggested", pa.string()),
        ("rule", pa.string()),
        ("rules_version", pa.string()),
    ]
)
#: One row per evidence run (``forestguard evidence runs``): what it was computed from and what it did.
RUNS_SCHEMA = pa.schema(
    [
        ("computed_at", pa.timestamp("us")),  # UTC
        ("data_version", pa.int64()),
        ("rules_version", pa.string()),
        ("rules_sha256", pa.string()),
        ("layers", pa.string()),  # JSON: name → version of each layer measured
        ("zones_measured", pa.int64()),
        ("findings_written", pa.int64()),
        ("suggestions_evaluated", pa.int64()),
        ("suggested", pa.string()),  # JSON: suggestions evaluated, by class
        ("seconds", pa.float64()),
    ]
)
#: A suggestion re-evaluated for a zone whose findings (or the rules) changed.
SUGGESTION_SCHEMA = pa.schema([("zone_id", pa.int32()), ("suggested", pa.string()), ("rule", pa.string()), ("rules_version", pa.string())])


@dataclass(frozen=True)
class Layer:
    """A reference layer: what it is, who published it and as of when, and which file it was read from."""

    name: str
    kind: str
    source: str  #: the organisation that publishes it (e.g. "ICMBio", "FUNAI", "SICAR")
    as_of: date  #: the date the data describe
    sha256: str = ""  #: of the file it was read from
    source_file: str = ""
    features: int = 0
    added_at: datetime | None = None
    version: int = 0  #: a number the store gives each add: findings name the version they were computed from

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            "features": self.features,
            "sha256": self.sha256,
            "source_file": self.source_file or None,
            "added_at": None if self.added_at is None else self.added_at.isoformat(timespec="seconds"),
            "version": self.version,
        }


@dataclass(frozen=True)
class Finding:
    """A zone's overlap with one reference feature, with the layer's provenance."""

    layer: str
    kind: str
    source: str
    as_of: date
    feature_id: str
    overlap_ha: float
    overlap_share: float  #: of the zone's own geodesic area
    valid_at_zone_year: bool  #: the feature was in force during the zone's year (no dates: always)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "kind": self.kind,
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            "feature_id": self.feature_id,
            "overlap_ha": round(self.overlap_ha, 4),
            "overlap_share": round(self.overlap_share, 4),
            "valid_at_zone_year": self.valid_at_zone_year,
        }


@dataclass(frozen=True)
class ZoneEvidence:
    """``forestguard evidence show``: a zone's stored class, the suggested one, and why."""

    zone_id: int
    classification: str | None  #: stored, in English (legal, illegal) or None
    suggested: str | None  #: None: evidence never computed for this zone
    rules_version: str | None
    rule: str | None  #: the rule that gave the suggestion (None: the default)
    year: int
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (exactly these keys)."""
        return {
            "zone_id": self.zone_id,
            "classification": self.classification,
            "suggested": self.suggested,
            "rules_version": self.rules_version,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class EvidenceState:
    """What the stored evidence was computed from: the next run redoes only what differs."""

    data_version: int
    rules_version: str
    rules_sha256: str
    layers: dict[str, int] = field(default_factory=dict)  #: name → version of each layer computed
    computed_at: datetime | None = None

    def to_rows(self) -> list[tuple[str, str]]:
        return [
            ("data_version", str(self.data_version)),
            ("rules_version", self.rules_version),
            ("rules_sha256", self.rules_sha256),
            ("layers", json.dumps(self.layers, sort_keys=True, ensure_ascii=False)),
            ("computed_at", "" if self.computed_at is None else self.computed_at.isoformat()),
        ]

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str]]) -> "EvidenceState | None":
        values = dict(rows)
        if "data_version" not in values:
            return None
        computed = values.get("computed_at") or ""
        return cls(
            data_version=int(values["data_version"]),
            rules_version=values.get("rules_version", ""),
            rules_sha256=values.get("rules_sha256", ""),
            layers={k: int(v) for k, v in json.loads(values.get("layers") or "{}").items()},
            computed_at=datetime.fromisoformat(computed) if computed else None,
        )


#: A zone's box as :meth:`~forestguard.stores.evidence.EvidenceStore.evidence_zone_batches` reads it.
BOUNDS = ("xmin", "ymin", "xmax", "ymax")


def chunks(data: pa.Table | Iterable[pa.Table]) -> Iterator[pa.Table]:
    """A table, or each of an iterable of tables (what :class:`EvidenceWrite` holds), one at a time."""
    if isinstance(data, pa.Table):
        yield data
    else:
        yield from data


@dataclass
class EvidenceWrite:
    """One evidence run's changes, written by a store in one transaction.

    Order: findings of ``recomputed`` zones and of ``dropped`` layers go; ``findings`` come in;
    ``zones`` rows replace those zones' evidence; ``suggestions`` update other zones'
    suggestion; with ``default`` set (the rules changed), every zone not in ``zones`` or
    ``suggestions`` gets the default suggestion. With ``prune``, evidence of zones no longer stored goes.
    The store refuses the write if its data version is no longer ``data_version``.
    """

    data_version: int
    state: EvidenceState
    recomputed: pa.Array  #: int32 zone ids whose findings are all replaced
    dropped: list[tuple[str, int]]  #: (layer, version) whose findings go
    findings: pa.Table | Iterable[pa.Table]  #: FINDINGS_SCHEMA, whole or in chunks (made as they are written: memory stays bounded)
    zones: pa.Table | Iterable[pa.Table]  #: EVIDENCE_SCHEMA, whole or in chunks; exactly the ``recomputed`` zones
    suggestions: pa.Table  #: SUGGESTION_SCHEMA
    default: str | None = None
    prune: bool = False  #: the zones changed: evidence of zones no longer stored goes
    #: ``recomputed`` is every zone stored: all findings and evidence go first (then nothing is left to prune)
    everything: bool = False
    run: EvidenceRun | None = None  #: recorded with the write (every run is kept)


@dataclass(frozen=True)
class EvidenceRun:
    """One ``evidence compute`` that wrote something: the rules (version and sha256) and layers it used, what it did.

    Every run is kept, so any suggestion can be traced to the rules file that made it.
    """

    computed_at: datetime
    data_version: int
    rules_version: str
    rules_sha256: str
    layers: dict[str, int]
    zones_measured: int
    findings_written: int
    suggestions_evaluated: int
    suggested: dict[str, int]
    seconds: float

    def to_row(self) -> tuple:
        """Values in :data:`RUNS_SCHEMA` order (computed_at naive UTC, JSON as text)."""
        return (self.computed_at.astimezone(timezone.utc).replace(tzinfo=None), self.data_version, self.rules_version, self.rules_sha256,
                json.dumps(self.layers, sort_keys=True, ensure_ascii=False), self.zones_measured, self.findings_written,
                self.suggestions_evaluated, json.dumps(self.suggested, sort_keys=True), round(self.seconds, 3))

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "EvidenceRun":
        at, version, rules_version, sha256, layers, zones, findings, suggestions, suggested, seconds = row
        at = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        return cls(at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc), int(version), rules_version, sha256,
                   {k: int(v) for k, v in json.loads(layers).items()}, int(zones), int(findings), int(suggestions),
                   {k: int(v) for k, v in json.loads(suggested).items()}, float(seconds))

    def to_dict(self) -> dict[str, Any]:
        return {"computed_at": self.computed_at.isoformat(timespec="seconds"), "data_version": self.data_version,
                "rules_version": self.rules_version, "rules_sha256": self.rules_sha256, "layers": self.layers,
                "zones_measured": self.zones_measured, "findings_written": self.findings_written,
                "suggestions_evaluated": self.suggestions_evaluated, "suggested": self.suggested, "seconds": self.seconds}


@dataclass(frozen=True)
class AppliedChange:
    """A classification ``evidence apply`` wrote into a zone that had none, and why."""

    zone_id: int
    classification: str  #: in English
    rule: str | None
    rules_version: str
    applied_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"zone_id": self.zone_id, "previous": None, "classification": self.classification, "rule": self.rule,
                "rules_version": self.rules_version, "applied_at": self.applied_at.isoformat(timespec="seconds")}
