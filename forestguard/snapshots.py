"""Versioned snapshots: a zone store frozen as GeoParquet 1.1 files plus ``manifest.json``.

A snapshot lives in ``<location>/<id>/`` (a local folder or ``s3://bucket/snapshots/``)::

    part-00000.parquet …   GeoParquet 1.1, rows sorted by country, year, id
    areas.parquet          the store's saved areas (name, WKB, sha256, source file, added), when it has any
    forestguard_*.parquet  reference layers, their features and the zones' evidence, when it has any
    manifest.json          id, created_at, source, schema version, rows, bbox, sha256 per file

The id is a hash of the files' contents, so the same zones give the same id
and a reader can check every byte. A snapshot is complete exactly when its
manifest exists: files are written first (locally into a hidden temporary
folder that is renamed into place; on S3 as objects), the manifest last.

Layout decisions:

- **No partitioning by year.** Statistics read every year anyway, and with rows
  sorted by country then year the row-group min/max statistics already prune
  country and year filters; hive partitions would take ``year`` out of the files
  (each part would no longer be a self-contained GeoParquet file) and multiply
  small objects on S3. Files are cut at ~1M rows (between countries) instead, so
  large stores give several parts that upload and scan in parallel.
- **Row groups of 122,880 rows**, DuckDB's own unit of parallel scanning: a few
  MB each, small enough for filters to skip most of them.
- ``area_ha`` DECIMAL(10,2) and ``confidence`` DECIMAL(3,2), stored as Parquet
  integers: sums stay exact and equal the source store's to the cent.
- A ``bbox`` struct column (xmin, ymin, xmax, ymax; float64, exact) declared as
  the geometry's covering, so readers filter by box without decoding WKB.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .config import redact, settings
from .errors import UserError
from .schema import SCHEMA_VERSION
from .stores.base import ZoneFilter, ZoneStore

FORMAT = "forestguard-snapshot/1"
MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 122_880
FILE_ROWS = 1_000_000
#: Zones read and prepared at a time: bounded memory; files are still cut at FILE_ROWS.
BATCH_ROWS = 250_000
SORTED_BY = ("country", "year", "id")
#: Local staging folders are named so; left behind by a killed create, they go after a day.
STAGING_PREFIX = ".tmp-snapshot-"
STALE_STAGING_S = 24 * 3600.0
#: Key of each file's own Parquet key-value metadata: the data version and rows it was written with.
FILE_METADATA_KEY = "forestguard"
SOURCE_COLUMNS = ("id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry")

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

# One pass in DuckDB over each batch: exact DECIMAL casts and the covering (in parallel). The
# WKB itself is not sent back through DuckDB: it is passed from the store's Arrow table as is.
_PREPARE_SQL = """
SELECT id::INTEGER AS id, country::VARCHAR AS country, region::VARCHAR AS region,
       classification::VARCHAR AS classification, area_ha::DECIMAL(10,2) AS area_ha,
       year::INTEGER AS year, source::VARCHAR AS source, confidence::DECIMAL(3,2) AS confidence,
       verified::BOOLEAN AS verified,
       struct_pack(xmin := ST_XMin(g), ymin := ST_YMin(g), xmax := ST_XMax(g), ymax := ST_YMax(g)) AS bbox,
       ST_GeometryType(g) AS geometry_type
FROM (SELECT *, ST_GeomFromWKB(geometry) AS g FROM batch)
"""
_GEOMETRY_TYPES = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "MULTIPOINT": "MultiPoint",
                   "MULTILINESTRING": "MultiLineString", "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection"}


class SnapshotCorrupt(UserError):
    """A snapshot whose files do not match its manifest."""


@dataclass(frozen=True)
class SnapshotFile:
    path: str
    rows: int
    size: int
    sha256: str


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
            data["files"] = tuple(SnapshotFile(**f) for f in data["files"])
            data["areas"] = SnapshotFile(**data["areas"]) if data.get("areas") else None
            data["evidence"] = tuple(SnapshotFile(**f) for f in data.get("evidence") or ())
            data["sorted_by"] = tuple(data.get("sorted_by", SORTED_BY))
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


# -- writing -----------------------------------------------------------------------------------


class _PartWriter:
    """Streams prepared chunks into part files of whole row groups, with GeoParquet metadata."""

    def __init__(self, folder: Path, data_version: int) -> None:
        self.folder = folder
        self.data_version = data_version
        self.files: list[SnapshotFile] = []
        self.bbox: list[float] | None = None  # of all files
        self._pending: list[pa.Table] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._rows = 0
        self._types: set[str] = set()
        self._bbox: list[float] | None = None

    def add(self, chunk: pa.Table) -> None:
        """Append a prepared batch; files are only cut between batches (between countries)."""
        if self._writer is not None and self._rows >= FILE_ROWS:
            self._close_file()
        if self._writer is None:
            self._open_file()
        types = chunk.column("geometry_type").unique().to_pylist()
        self._types.update(_GEOMETRY_TYPES.get(str(t), str(t).title()) for t in types if t is not None)
        chunk = chunk.select(SCHEMA.names).cast(SCHEMA)
        self._bbox = _union(self._bbox, _extent(chunk))
        self._rows += len(chunk)
        self._pending.append(chunk)
        self._flush(whole_groups_only=True)

    def _open_file(self) -> None:
        self._path = self.folder / f"part-{len(self.files):05d}.parquet"
        self._writer = pq.ParquetWriter(
            self._path,
            SCHEMA,
            compression="zstd",
            # Dictionaries pay off for the repetitive text columns only; trying one on
            # a million distinct WKB blobs costs a third of the write time for nothing.
            use_dictionary=[f.name for f in SCHEMA if pa.types.is_string(f.type)],
            store_decimal_as_integer=True,
            write_statistics=[name for name in SCHEMA.names if name != "geometry"],
            sorting_columns=[pq.SortingColumn(SCHEMA.get_field_index(c)) for c in SORTED_BY],
        )
        self._rows, self._types, self._bbox = 0, set(), None

    def _flush(self, whole_groups_only: bool) -> None:
        pending = sum(len(t) for t in self._pending)
        if not pending or (whole_groups_only and pending < ROW_GROUP_ROWS):
            return
        table = pa.concat_tables(self._pending)  # zero-copy: slices of the batches
        cut = len(table) - len(table) % ROW_GROUP_ROWS if whole_groups_only else len(table)
        self._writer.write_table(table.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
        self._pending = [table.slice(cut)] if cut < len(table) else []

    def _close_file(self) -> None:
        self._flush(whole_groups_only=False)
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": sorted(self._types),
            "crs": _crs_projjson(),
            "edges": "planar",
            "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
        }
        if self._bbox is not None:
            column["bbox"] = self._bbox
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
        # What the manifest says of the data, also inside each file, so `snapshot verify` can hold the two together.
        ours = {"data_version": self.data_version, "rows": self._rows}
        self._writer.add_key_value_metadata({"geo": json.dumps(geo), FILE_METADATA_KEY: json.dumps(ours)})
        self._writer.close()
        digest, size = storage.sha256_file(self._path)
        self.files.append(SnapshotFile(self._path.name, self._rows, size, digest))
        self.bbox = _union(self.bbox, self._bbox)
        self._writer = None

    def finish(self) -> list[SnapshotFile]:
        if self._writer is None and not self.files:
            self._open_file()  # an empty store still gives one (empty) file with the schema
        if self._writer is not None:
            self._close_file()
        return self.files


def _extent(table: pa.Table) -> list[float] | None:
    import pyarrow.compute as pc

    if len(table) == 0:
        return None
    bbox = table.column("bbox").combine_chunks()
    return [pc.min(bbox.field("xmin")).as_py(), pc.min(bbox.field("ymin")).as_py(),
            pc.max(bbox.field("xmax")).as_py(), pc.max(bbox.field("ymax")).as_py()]


def _union(a: list[float] | None, b: list[float] | None) -> list[float] | None:
    if a is None or b is None:
        return a or b
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


@functools.cache
def _crs_projjson() -> dict[str, Any]:
    from pyproj import CRS

    return CRS.from_epsg(4326).to_json_dict()


def _batches(store: ZoneStore) -> Iterator[ZoneFilter]:
    """Filters that read the store in sort order, about BATCH_ROWS zones at a time.

    Whole countries are grouped (codepoint order); a country larger than a
    batch is read in year ranges. Memory stays bounded however large the store.
    """
    counts = store.aggregate(ZoneFilter(), ["country", "year"])
    per_country: dict[str, list[tuple[int, int]]] = {}
    for country, year, zones in zip(counts["country"], counts["year"], counts["zones"]):
        per_country.setdefault(country, []).append((int(year), int(zones)))
    batch: builtins.list[str] = []
    rows = 0
    for country in sorted(per_country):
        years = sorted(per_country[country])
        total = sum(n for _, n in years)
        if batch and (rows + total > BATCH_ROWS or total > BATCH_ROWS):
            yield ZoneFilter(countries=tuple(batch))
            batch, rows = [], 0
        if total <= BATCH_ROWS:
            batch.append(country)
            rows += total
            continue
        run: builtins.list[int] = []
        size = 0
        for year, zones in years:
            run.append(year)
            size += zones
            if size >= BATCH_ROWS or year == years[-1][0]:
                yield ZoneFilter(countries=(country,), year_from=run[0], year_to=run[-1])
                run, size = [], 0
    if batch:
        yield ZoneFilter(countries=tuple(batch))


def _in_codepoint_order(chunk: pa.Table) -> pa.Table:
    """The store sorts countries by its collation; the snapshot promises codepoint order."""
    import pyarrow.compute as pc

    appearing = chunk.column("country").unique().to_pylist()
    if appearing == sorted(appearing):
        return chunk
    return chunk.take(pc.sort_indices(chunk, [(c, "ascending") for c in SORTED_BY]))


def _write_parts(store: ZoneStore, folder: Path, on_rows: Callable[[int], None] | None, data_version: int) -> _PartWriter:
    """Read the store batch by batch and write the part files."""
    from .stores.duckdb import connect

    parts = _PartWriter(folder, data_version)
    con = connect(None)
    con.execute("SET preserve_insertion_order = true")  # prepared rows stay aligned with the batch
    try:
        for where in _batches(store):
            batch = _in_codepoint_order(store.zones_arrow(where, columns=SOURCE_COLUMNS))
            con.register("batch", batch)
            prepared = con.execute(_PREPARE_SQL).to_arrow_table()
            con.unregister("batch")
            if not prepared.column("id").equals(batch.column("id").cast(pa.int32())):
                raise RuntimeError("DuckDB reordered the batch: covering and geometry would not match")
            parts.add(prepared.append_column("geometry", batch.column("geometry")))
            if on_rows:
                on_rows(len(batch))
        parts.finish()
    finally:
        con.close()
    return parts


#: The saved areas' file in a snapshot, and its columns (geometry: the area's canonical WKB).
AREAS_FILE = "areas.parquet"
AREAS_SCHEMA = pa.schema([("name", pa.string()), ("geometry", pa.binary()), ("sha256", pa.string()),
                          ("source_file", pa.string()), ("added_at", pa.timestamp("us", tz="UTC"))])


def _write_areas(store: ZoneStore, folder: Path) -> SnapshotFile | None:
    """The store's saved areas as one Parquet file (None when it has none): a snapshot answers ``--area NAME`` too."""
    areas = store.saved_areas()
    if not areas:
        return None
    table = pa.table(
        {"name": [a.name for a in areas], "geometry": [a.wkb for a in areas], "sha256": [a.sha256 for a in areas],
         "source_file": [a.source or None for a in areas], "added_at": [a.added_at for a in areas]},
        schema=AREAS_SCHEMA,
    )
    path = folder / AREAS_FILE
    pq.write_table(table, path, compression="zstd")
    digest, size = storage.sha256_file(path)
    return SnapshotFile(AREAS_FILE, len(table), size, digest)


def _write_evidence(store: ZoneStore, folder: Path) -> tuple[SnapshotFile, ...]:
    """The store's reference layers and evidence, a Parquet file per table (none when it has none)."""
    written = []
    for table_name, table in store.evidence_tables().items():
        path = folder / f"{table_name}.parquet"
        pq.write_table(table, path, compression="zstd")
        digest, size = storage.sha256_file(path)
        written.append(SnapshotFile(path.name, len(table), size, digest))
    return tuple(written)


def create(store: ZoneStore, out: str | os.PathLike[str] | None = None, *, on_rows: Callable[[int], None] | None = None) -> Manifest:
    """Snapshot ``store`` into ``out`` (default :func:`default_location`) and return the manifest.

    Content-addressed: snapshotting unchanged zones again returns the existing
    snapshot. A store that changes while it is read is an error, not a mixed snapshot.
    """
    location = str(out or default_location())
    remote = storage.is_s3(location)
    if not remote:
        Path(location).mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(Path(location))
    # Local: stage beside the destination so the final rename is atomic; S3: any local scratch.
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=None if remote else location))
    try:
        version = store.data_version()
        parts = _write_parts(store, staging, on_rows, version)
        areas = _write_areas(store, staging)
        evidence = _write_evidence(store, staging)
        if store.data_version() != version:
            raise UserError(f"{redact(store.url)} changed while the snapshot was written (data version {version} → {store.data_version()}); run it again")
        files = tuple(parts.files)
        manifest = Manifest(
            id=Manifest.content_id(files, SCHEMA_VERSION, areas, evidence),
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source={"engine": store.engine, "url": redact(store.url), "data_version": version},
            schema_version=SCHEMA_VERSION,
            rows=sum(f.rows for f in files),
            bbox=parts.bbox,
            files=files,
            row_group_rows=ROW_GROUP_ROWS,
            areas=areas,
            evidence=evidence,
        )
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")  # last
        target = storage.at(location).child(manifest.id)
        if target.exists(MANIFEST):  # same content already published
            return read_manifest(target)
        if remote:
            storage.publish_dir(staging, target.url, marker=MANIFEST)
        else:
            _fsync_tree(staging)
            try:
                os.rename(staging, Path(location) / manifest.id)
            except OSError:
                if not target.exists(MANIFEST):  # not a concurrent writer of the same content
                    raise
        return replace(manifest, location=target.url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(location: Path, older_than_s: float = STALE_STAGING_S) -> None:
    """Staging folders of creates that were killed: never a snapshot (no rename), only disk used.

    Age, not absence of a process, tells them apart from a concurrent create's: that one is
    writing into its folder now.
    """
    cutoff = time.time() - older_than_s
    for staging in location.glob(f"{STAGING_PREFIX}*"):
        try:
            if staging.is_dir() and staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            continue


def _fsync_tree(folder: Path) -> None:
    """Flush the files and the folder entry so a power cut after the rename loses nothing."""
    for path in [*folder.iterdir(), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading -----------------------------------------------------------------------------------


def read_manifest(folder: storage.Folder) -> Manifest:
    if not folder.exists(MANIFEST):
        raise UserError(f"no snapshot at {folder.url} (no {MANIFEST}: missing, or still being written)")
    return Manifest.from_json(folder.read_bytes(MANIFEST), folder.url)


def list(location: str | os.PathLike[str] | None = None) -> builtins.list[Manifest]:  # noqa: A001
    """Complete snapshots in ``location``, oldest first (folders without a manifest are skipped)."""
    folder = storage.at(location or default_location())
    found = []
    for name in folder.list_prefixes():
        child = folder.child(name)
        if child.exists(MANIFEST):
            found.append(Manifest.from_json(child.read_bytes(MANIFEST), child.url))
    return sorted(found, key=lambda m: (m.created_at, m.id))


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


def verify(ref: str, location: str | os.PathLike[str] | None = None) -> Manifest:
    """Re-hash every file of a snapshot and hold the manifest's figures against the data.

    Raises :class:`SnapshotCorrupt` (one line naming the files and fields) when a file is
    missing or differs from its manifest entry, when a file's row count is not the manifest's
    (per file and in all), or when the data version the files were written with is not the
    one the manifest gives (files written before that was recorded are not checked for it).
    """
    folder, manifest = locate(ref, location)
    problems = []
    for entry in manifest.all_files:
        if not folder.exists(entry.path):
            problems.append(f"{entry.path} is missing")
            continue
        with _local_copy(folder, entry.path) as path:
            problem = mismatch(entry, *storage.sha256_file(path))
            problems += [problem] if problem else _facts_problems(manifest, entry, path)
    if not problems and sum(f.rows for f in manifest.files) != manifest.rows:
        problems.append(f"the manifest says {manifest.rows:,} rows, its files hold {sum(f.rows for f in manifest.files):,}")
    if problems:
        raise SnapshotCorrupt(f"snapshot {manifest.id} at {folder.url} is corrupt: {'; '.join(problems)}")
    return manifest


@contextlib.contextmanager
def _local_copy(folder: storage.Folder, name: str) -> Iterator[Path]:
    """A local path of the file: itself for a local folder, a temporary download otherwise."""
    if isinstance(folder, storage.LocalFolder):
        yield folder.path / name
        return
    with tempfile.TemporaryDirectory(prefix="fg-verify-") as scratch:
        path = Path(scratch) / Path(name).name
        folder.get_file(name, path)
        yield path


def _facts_problems(manifest: Manifest, entry: SnapshotFile, path: Path) -> builtins.list[str]:
    """What the file's own footer says against the manifest: its rows, the data version it was written at."""
    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # a file that matches its hash but is no Parquet: the manifest was made up
        return [f"{entry.path} is not a readable Parquet file ({type(exc).__name__})"]
    problems = []
    if meta.num_rows != entry.rows:
        problems.append(f"{entry.path} holds {meta.num_rows:,} rows, the manifest says {entry.rows:,}")
    ours = (meta.metadata or {}).get(FILE_METADATA_KEY.encode())
    if ours is not None:
        written_at = json.loads(ours).get("data_version")
        if written_at != manifest.data_version:
            problems.append(f"{entry.path} was written at data version {written_at}, the manifest says {manifest.data_version}")
    return problems


def mismatch(entry: SnapshotFile, digest: str, size: int) -> str | None:
    """What is wrong with a file of this digest and size, or None if it is the manifest's."""
    if size != entry.size:
        return f"{entry.path} has {size:,} bytes, manifest says {entry.size:,}"
    if digest != entry.sha256:
        return f"{entry.path} sha256 {digest[:12]}… does not match the manifest's {entry.sha256[:12]}…"
    return None


def open(ref: str, location: str | os.PathLike[str] | None = None) -> ZoneStore:  # noqa: A001
    """Open a snapshot as a read-only zone store (see :class:`forestguard.stores.snapshot.SnapshotStore`)."""
    from .stores.snapshot import SnapshotStore

    folder, _ = locate(ref, location)
    return SnapshotStore(folder.url)
