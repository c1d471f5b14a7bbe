"""The snapshot format: ``manifest.json``, the files it lists, and finding a snapshot by reference.

A snapshot lives in ``<location>/<id>/`` (a local folder or ``s3://bucket/snapshots/``)::

    part-00000.parquet …   GeoParquet 1.1 partitions, each a stretch of a Hilbert curve over the zones
    areas.parquet          the store's saved areas (name, WKB, sha256, source file, added), when it has any
    forestguard_*.parquet  reference layers, their features and the zones' evidence, when it has any
    manifest.json          id, created_at, source, schema version, rows, bbox; rows, bbox, sha256 per file

The id is a hash of the files' contents, so the same zones give the same id and a reader
can check every byte. This is what both sides share: the reader
(:class:`forestguard.stores.snapshot.SnapshotStore`) and the writer
(:func:`forestguard.snapshots.create`, which also explains the layout); it imports neither.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import storage
from ..config import settings
from ..errors import UserError
from .base import ZoneFilter

FORMAT = "forestguard-snapshot/1"
MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 122_880
#: Order of the rows inside each partition file (``hilbert``: the partitioning key, not stored).
SORTED_BY = ("country", "year", "hilbert")
#: How snapshots written before partitioning were sorted (one order over all files).
LEGACY_SORTED_BY = ("country", "year", "id")
PARTITIONING = "hilbert"
#: Key of each file's own Parquet key-value metadata: the data version and rows it was written with.
FILE_METADATA_KEY = "forestguard"

_BBOX_TYPE = pa.struct([(name, pa.float64()) for name in ("xmin", "ymin", "xmax", "ymax")])
#: The Arrow schema of every snapshot file (the zone table without timestamps, plus the covering).
SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("country", pa.string()),
        ("region", pa.string()),
        ("classification", pa.string()),
        ("area_ha", pa.decimal128(10, 2)),
        ("year", pa.int32()),
        ("source", pa.string()),
        ("confidence", pa.decimal128(3, 2)),
        ("verified", pa.bool_()),
        ("geometry", pa.binary()),
        ("bbox", _BBOX_TYPE),
    ]
)

#: The saved areas' file in a snapshot, and its columns (geometry: the area's canonical WKB).
AREAS_FILE = "areas.parquet"
AREAS_SCHEMA = pa.schema([("name", pa.string()), ("geometry", pa.binary()), ("sha256", pa.string()),
                          ("source_file", pa.string()), ("added_at", pa.timestamp("us", tz="UTC"))])


class SnapshotCorrupt(UserError):
    """A snapshot whose files do not match its manifest."""


@dataclass(frozen=True)
class SnapshotFile:
    path: str
    rows: int
    size: int
    sha256: str
    #: What the file holds, for pruning without opening it (None: written before partitioning).
    bbox: list[float] | None = None  #: lon/lat extent of its zones (None also when empty)
    countries: list[str] | None = None
    years: list[int] | None = None  #: [first, last]

    def may_hold(self, where: ZoneFilter) -> bool:
        """Whether the file may hold zones ``where`` selects, from the manifest alone (a partition a job can skip is never read)."""
        if self.rows == 0:
            return False
        if self.bbox is not None:
            for box in (where.bbox, None if where.area is None else where.area.bbox):  # an area's zones meet its box
                if box is not None and (self.bbox[2] < box[0] or self.bbox[3] < box[1] or self.bbox[0] > box[2] or self.bbox[1] > box[3]):
                    return False
        if where.countries and self.countries is not None and not set(where.countries) & set(self.countries):
            return False
        if self.years is not None:
            if where.year_from is not None and self.years[1] < where.year_from:
                return False
            if where.year_to is not None and self.years[0] > where.year_to:
                return False
        return True


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` records; ``location`` is where it was read from (not stored)."""

    id: str
    created_at: str
    source: dict[str, Any]
    schema_version: int
    rows: int
    bbox: list[float] | None
    files: tuple[SnapshotFile, ...]
    format: str = FORMAT
    geoparquet_version: str = "1.1.0"
    sorted_by: tuple[str, ...] = SORTED_BY
    row_group_rows: int = ROW_GROUP_ROWS
    partitioning: str | None = None
    partition_rows: int | None = None
    #: The saved areas' file (see :data:`AREAS_FILE`), None when the store had none.
    areas: SnapshotFile | None = None
    #: Reference layers, their features and the evidence (a file per table, named after it), empty when the store had none.
    evidence: tuple[SnapshotFile, ...] = ()
    location: str | None = field(default=None, compare=False)

    @staticmethod
    def content_id(files: tuple[SnapshotFile, ...], schema_version: int, areas: SnapshotFile | None = None,
                   evidence: tuple[SnapshotFile, ...] = ()) -> str:
        """The id: a hash over each file's name, size and sha256 (16 hex digits), the areas' and evidence files too."""
        listing = [[f.path, f.size, f.sha256] for f in files]
        document: dict[str, Any] = {"schema_version": schema_version, "files": listing}
        if areas is not None:  # snapshots without areas keep the ids they always had
            document["areas"] = [areas.path, areas.size, areas.sha256]
        if evidence:  # and those without evidence too
            document["evidence"] = [[f.path, f.size, f.sha256] for f in evidence]
        text = json.dumps(document, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def all_files(self) -> tuple[SnapshotFile, ...]:
        """Every file the manifest lists: the zones' parts, then the areas' and evidence files."""
        return self.files + ((self.areas,) if self.areas is not None else ()) + self.evidence

    @property
    def data_version(self) -> int:
        return int(self.source["data_version"])

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("location")
        if self.areas is None:
            data.pop("areas")
        if not self.evidence:
            data.pop("evidence")
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str, location: str) -> "Manifest":
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            known = {f.name for f in fields(cls)} - {"location"}
            data = {k: v for k, v in data.items() if k in known}  # fields added later are ignored
            known_file = {f.name for f in fields(SnapshotFile)}
            data["files"] = tuple(SnapshotFile(**{k: v for k, v in f.items() if k in known_file}) for f in data["files"])
            data["areas"] = SnapshotFile(**{k: v for k, v in data["areas"].items() if k in known_file}) if data.get("areas") else None
            data["evidence"] = tuple(SnapshotFile(**{k: v for k, v in f.items() if k in known_file}) for f in data.get("evidence") or ())
            data["sorted_by"] = tuple(data.get("sorted_by", LEGACY_SORTED_BY))
            manifest = cls(**data, location=location)
        except (ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{location}/{MANIFEST} is not a valid snapshot manifest ({exc})") from None
        if manifest.content_id(manifest.files, manifest.schema_version, manifest.areas, manifest.evidence) != manifest.id:
            raise SnapshotCorrupt(f"{location}/{MANIFEST}: its file list does not hash to id {manifest.id} (edited or corrupt)")
        return manifest


def default_location() -> str:
    """``s3://$S3_BUCKET/snapshots`` when S3_BUCKET is set, else the local snapshots folder."""
    config = settings()
    return f"s3://{config.s3_bucket}/snapshots" if config.s3_bucket else str(config.snapshots_dir)


def read_manifest(folder: storage.Folder) -> Manifest:
    if not folder.exists(MANIFEST):
        raise UserError(f"no snapshot at {folder.url} (no {MANIFEST}: missing, or still being written)")
    return Manifest.from_json(folder.read_bytes(MANIFEST), folder.url)


def locate(ref: str, location: str | os.PathLike[str] | None = None) -> tuple[storage.Folder, Manifest]:
    """Find a snapshot by folder, manifest path/URL, id, or unique id prefix (in ``location``)."""
    ref = ref.removeprefix("snapshot:")
    base = ref[: -len(MANIFEST)].rstrip("/") if ref.endswith(MANIFEST) else ref.rstrip("/")
    if storage.is_s3(base) or os.sep in base or "/" in base or Path(base).is_dir():
        folder = storage.at(base)
        return folder, read_manifest(folder)
    where = storage.at(location or default_location())
    matches = [name for name in where.list_prefixes() if name.startswith(ref)]
    if not matches:
        raise UserError(f"no snapshot {ref!r} in {where.url} (see 'forestguard snapshot list')")
    if len(matches) > 1:
        raise UserError(f"snapshot id {ref!r} is ambiguous in {where.url}: {', '.join(matches[:5])}")
    folder = where.child(matches[0])
    return folder, read_manifest(folder)


def mismatch(entry: SnapshotFile, digest: str, size: int) -> str | None:
    """What is wrong with a file of this digest and size, or None if it is the manifest's."""
    if size != entry.size:
        return f"{entry.path} has {size:,} bytes, manifest says {entry.size:,}"
    if digest != entry.sha256:
        return f"{entry.path} sha256 {digest[:12]}… does not match the manifest's {entry.sha256[:12]}…"
    return None
