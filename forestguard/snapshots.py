"""Versioned snapshots: a zone store frozen as GeoParquet 1.1 files plus ``manifest.json``.

Taking (:func:`create`), listing, verifying and opening snapshots; the format itself (the
manifest, the files' schema, finding a snapshot by reference) is
:mod:`forestguard.stores.snapshot_format`, shared with the engine that reads snapshots
(:mod:`forestguard.stores.snapshot`), and its names are re-exported here.

A snapshot is complete exactly when its manifest exists: files are written first (locally
into a hidden temporary folder that is renamed into place; on S3 as objects), the manifest
last.

Layout decisions:

- **Spatial partitions** (the unit of scale-out: one Dask task reads one file). Zones are
  ordered along a Hilbert curve through their bounding-box centres (DuckDB spatial's
  ``ST_Hilbert`` over the whole lon/lat world) and cut into files of about
  ``partition_rows`` zones (default :data:`PARTITION_ROWS`), so each file covers a compact
  region; the manifest lists every file's bbox and rows, and a view or bbox filter skips
  the files whose bbox misses it without opening them. The sort is DuckDB's out-of-core
  ORDER BY over a local spill file: memory stays bounded however large the store.
- **Inside a file, rows are sorted by country, year, then Hilbert key**: row-group
  min/max statistics still prune country and year filters (as the single-sorted layout
  did), and each row group is a stretch of one country-year's curve, so its ``bbox``
  statistics are tight too. No hive partitions by year: statistics read every year, and
  each file stays a self-contained GeoParquet file.
- **Row groups of 122,880 rows**, DuckDB's own unit of parallel scanning: a few
  MB each, small enough for filters to skip most of them.
- Snapshots written before partitioning (one sort by country, year, id; no per-file bbox)
  are read the same way; only file-level pruning needs the per-file bbox.
- ``area_ha`` DECIMAL(10,2) and ``confidence`` DECIMAL(3,2), stored as Parquet
  integers: sums stay exact and equal the source store's to the cent.
- A ``bbox`` struct column (xmin, ymin, xmax, ymax; float64, exact) declared as
  the geometry's covering, so readers filter by box without decoding WKB.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage
from .config import redact
from .errors import UserError
from .schema import SCHEMA_VERSION
from .stores.base import ZoneFilter, ZoneStore
from .stores.snapshot_format import (
    AREAS_FILE,
    AREAS_SCHEMA,
    FILE_METADATA_KEY,
    FORMAT,
    LEGACY_SORTED_BY,
    MANIFEST,
    PARTITIONING,
    ROW_GROUP_ROWS,
    SCHEMA,
    SORTED_BY,
    Manifest,
    SnapshotCorrupt,
    SnapshotFile,
    default_location,
    locate,
    mismatch,
    read_manifest,
)

__all__ = [
    "AREAS_FILE", "AREAS_SCHEMA", "FILE_METADATA_KEY", "FORMAT", "LEGACY_SORTED_BY", "MANIFEST", "PARTITIONING", "ROW_GROUP_ROWS", "SCHEMA", "SORTED_BY",
    "Manifest", "SnapshotCorrupt", "SnapshotFile", "default_location", "locate", "mismatch", "read_manifest",
    "BATCH_ROWS", "PARTITION_ROWS", "create", "list_snapshots", "open_snapshot", "verify",
]

#: Zones per partition file unless told (``snapshot create --partition-rows``): ~100 MB of
#: GeoParquet, a Dask task of a second or two, few enough objects on S3.
PARTITION_ROWS = 1_000_000
#: Zones read and prepared at a time (whole countries, or a large country's years): bounded memory.
BATCH_ROWS = 250_000
#: The extent the Hilbert key is taken over (lon/lat): the whole world, so keys compare across snapshots.
_HILBERT_BOUNDS = "{'min_x': -180.0, 'min_y': -90.0, 'max_x': 180.0, 'max_y': 90.0}::BOX_2D"
#: Local staging folders are named so; left behind by a killed create, they go after a day.
STAGING_PREFIX = ".tmp-snapshot-"
STALE_STAGING_S = 24 * 3600.0
SOURCE_COLUMNS = ("id", "country", "region", "classification", "area_ha", "year", "source", "confidence", "verified", "geometry")

#: Rows as prepared for partitioning: the file schema, the Hilbert key and each geometry's type.
_PREPARED_SCHEMA = SCHEMA.append(pa.field("hilbert", pa.uint32())).append(pa.field("geometry_type", pa.string()))

# One pass in DuckDB over each batch: exact DECIMAL casts and the covering (in parallel). The
# WKB itself is not sent back through DuckDB: it is passed from the store's Arrow table as is.
_PREPARE_SQL = f"""
SELECT id::INTEGER AS id, country::VARCHAR AS country, region::VARCHAR AS region,
       classification::VARCHAR AS classification, area_ha::DECIMAL(10,2) AS area_ha,
       year::INTEGER AS year, source::VARCHAR AS source, confidence::DECIMAL(3,2) AS confidence,
       verified::BOOLEAN AS verified,
       struct_pack(xmin := ST_XMin(g), ymin := ST_YMin(g), xmax := ST_XMax(g), ymax := ST_YMax(g)) AS bbox,
       ST_Hilbert((ST_XMin(g) + ST_XMax(g)) / 2, (ST_YMin(g) + ST_YMax(g)) / 2, {_HILBERT_BOUNDS}) AS hilbert,
       ST_GeometryType(g)::VARCHAR AS geometry_type
FROM (SELECT *, ST_GeomFromWKB(geometry) AS g FROM batch)
"""
_GEOMETRY_TYPES = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "MULTIPOINT": "MultiPoint",
                   "MULTILINESTRING": "MultiLineString", "MULTIPOLYGON": "MultiPolygon", "GEOMETRYCOLLECTION": "GeometryCollection"}


# -- writing -----------------------------------------------------------------------------------


class _PartWriter:
    """Writes each partition as one file of whole row groups, with GeoParquet metadata and its bbox."""

    def __init__(self, folder: Path, data_version: int) -> None:
        self.folder = folder
        self.data_version = data_version
        self.files: list[SnapshotFile] = []
        self.bbox: list[float] | None = None  # of all files

    def add(self, partition: pa.Table) -> None:
        """Write one partition (prepared rows, any order) as the next part file, sorted by :data:`SORTED_BY`."""
        import pyarrow.compute as pc

        types = partition.column("geometry_type").unique().to_pylist()
        geometry_types = sorted({_GEOMETRY_TYPES.get(str(t), str(t).title()) for t in types if t is not None})
        order = pc.sort_indices(partition, [(c, "ascending") for c in (*SORTED_BY, "id")])
        table = partition.select(SCHEMA.names).cast(SCHEMA).take(order)
        del partition, order
        bbox = _extent(table)
        countries = sorted(c for c in table.column("country").unique().to_pylist() if c is not None)
        years = [pc.min(table.column("year")).as_py(), pc.max(table.column("year")).as_py()] if len(table) else None
        path = self.folder / f"part-{len(self.files):05d}.parquet"
        writer = pq.ParquetWriter(
            path,
            SCHEMA,
            compression="zstd",
            # Dictionaries pay off for the repetitive text columns only; trying one on
            # a million distinct WKB blobs costs a third of the write time for nothing.
            use_dictionary=[f.name for f in SCHEMA if pa.types.is_string(f.type)],
            store_decimal_as_integer=True,
            # Leaf paths: statistics of the covering's fields are what let a bbox filter skip row groups.
            write_statistics=[*(n for n in SCHEMA.names if n not in ("geometry", "bbox")), *(f"bbox.{k}" for k in ("xmin", "ymin", "xmax", "ymax"))],
            sorting_columns=[pq.SortingColumn(SCHEMA.get_field_index(c)) for c in SORTED_BY if c in SCHEMA.names],
        )
        try:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            column: dict[str, Any] = {
                "encoding": "WKB",
                "geometry_types": geometry_types,
                "crs": _crs_projjson(),
                "edges": "planar",
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
            }
            if bbox is not None:
                column["bbox"] = bbox
            geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
            # What the manifest says of the data, also inside each file, so `snapshot verify` can hold the two together.
            ours = {"data_version": self.data_version, "rows": len(table)}
            writer.add_key_value_metadata({"geo": json.dumps(geo), FILE_METADATA_KEY: json.dumps(ours)})
        finally:
            writer.close()
        digest, size = storage.sha256_file(path)
        self.files.append(SnapshotFile(path.name, len(table), size, digest, bbox, countries if len(table) else None, years))
        self.bbox = _union(self.bbox, bbox)

    def finish(self) -> list[SnapshotFile]:
        if not self.files:  # an empty store still gives one (empty) file with the schema
            self.add(_PREPARED_SCHEMA.empty_table())
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
    batch: list[str] = []
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
        run: list[int] = []
        size = 0
        for year, zones in years:
            run.append(year)
            size += zones
            if size >= BATCH_ROWS or year == years[-1][0]:
                yield ZoneFilter(countries=(country,), year_from=run[0], year_to=run[-1])
                run, size = [], 0
    if batch:
        yield ZoneFilter(countries=tuple(batch))


def _prepared(con: Any, batch: pa.Table) -> pa.Table:
    """A batch of store rows with exact decimals, its covering, Hilbert key and geometry types (one DuckDB pass)."""
    con.register("batch", batch)
    try:
        prepared = con.execute(_PREPARE_SQL).to_arrow_table()
    finally:
        con.unregister("batch")
    if not prepared.column("id").equals(batch.column("id").cast(pa.int32())):
        raise RuntimeError("DuckDB reordered the batch: covering and geometry would not match")
    return prepared.append_column("geometry", batch.column("geometry")).select(_PREPARED_SCHEMA.names).cast(_PREPARED_SCHEMA)


def _write_parts(store: ZoneStore, folder: Path, on_rows: Callable[[int], None] | None, data_version: int,
                 partition_rows: int = PARTITION_ROWS) -> _PartWriter:
    """Read the store batch by batch and write it as Hilbert-ordered partitions of about ``partition_rows``.

    A store that fits one partition is sorted in memory. A larger one is written to a
    local spill file first, which DuckDB then reads in Hilbert order (its ORDER BY spills
    to disk past its memory limit), cut into partitions of equal size: memory holds one
    partition, whatever the store.
    """
    from .stores.duckdb import connect

    parts = _PartWriter(folder, data_version)
    total = store.count()
    count = max(1, -(-total // partition_rows))
    size = -(-total // count) if total else 0  # equal partitions: 10.5M at 1M gives 11 of ~955k, not a last small one
    spill_path = folder / ".spill.parquet"
    spill: pq.ParquetWriter | None = None if count == 1 else pq.ParquetWriter(spill_path, _PREPARED_SCHEMA, compression="lz4", write_statistics=False)
    held: list[pa.Table] = []
    con = connect(None)
    con.execute("SET preserve_insertion_order = true")  # prepared rows stay aligned with the batch
    try:
        for where in _batches(store):
            batch = store.zones_arrow(where, columns=SOURCE_COLUMNS)
            prepared = _prepared(con, batch)
            if spill is None:
                held.append(prepared)
            else:
                spill.write_table(prepared, row_group_size=ROW_GROUP_ROWS)
            if on_rows:
                on_rows(len(batch))
            del batch, prepared
        if spill is None:
            if held:
                parts.add(pa.concat_tables(held))
            held.clear()
        else:
            spill.close()
            con.execute("SET preserve_insertion_order = true")
            con.execute(f"SET temp_directory = {_sql_literal(str(folder / '.sort'))}")
            reader = con.execute(f"SELECT * FROM read_parquet({_sql_literal(str(spill_path))}) ORDER BY hilbert, id").to_arrow_reader(ROW_GROUP_ROWS)
            pending: list[pa.RecordBatch] = []
            rows = 0
            for chunk in reader:
                pending.append(chunk)
                rows += len(chunk)
                while rows >= size:  # slices of the batches, no copy: the sorted partition is the one copy made
                    table = pa.Table.from_batches(pending, schema=_PREPARED_SCHEMA)
                    parts.add(table.slice(0, size))
                    rest = table.slice(size)
                    pending, rows = rest.to_batches(), len(rest)
                    del table, rest
            if rows:
                parts.add(pa.Table.from_batches(pending, schema=_PREPARED_SCHEMA))
        parts.finish()
    finally:
        con.close()
        if spill is not None:
            spill.close()
        spill_path.unlink(missing_ok=True)
        shutil.rmtree(folder / ".sort", ignore_errors=True)
    return parts


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


def create(store: ZoneStore, out: str | os.PathLike[str] | None = None, *, on_rows: Callable[[int], None] | None = None,
           partition_rows: int | None = None) -> Manifest:
    """Snapshot ``store`` into ``out`` (default :func:`default_location`) and return the manifest.

    Zones are cut into spatial partitions of about ``partition_rows`` (see the module's notes).
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
        partition_rows = PARTITION_ROWS if partition_rows is None else int(partition_rows)
        if partition_rows < 1:
            raise UserError(f"partitions need at least one row, not {partition_rows}")
        parts = _write_parts(store, staging, on_rows, version, partition_rows)
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
            partitioning=PARTITIONING,
            partition_rows=partition_rows,
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


def list_snapshots(location: str | os.PathLike[str] | None = None) -> list[Manifest]:
    """Complete snapshots in ``location``, oldest first (folders without a manifest are skipped)."""
    folder = storage.at(location or default_location())
    found = []
    for name in folder.list_prefixes():
        child = folder.child(name)
        if child.exists(MANIFEST):
            found.append(Manifest.from_json(child.read_bytes(MANIFEST), child.url))
    return sorted(found, key=lambda m: (m.created_at, m.id))


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


def _facts_problems(manifest: Manifest, entry: SnapshotFile, path: Path) -> list[str]:
    """What the file's own footer says against the manifest: its rows, the data version it was written at."""
    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # a file that matches its hash but is no Parquet: the manifest was made up
        return [f"{entry.path} is not a readable Parquet file ({type(exc).__name__})"]
    problems = []
    if meta.num_rows != entry.rows:
        problems.append(f"{entry.path} holds {meta.num_rows:,} rows, the manifest says {entry.rows:,}")
    if entry.bbox is not None:
        geo = json.loads((meta.metadata or {}).get(b"geo", b"{}"))
        written = geo.get("columns", {}).get("geometry", {}).get("bbox")
        if written != entry.bbox:
            problems.append(f"{entry.path} covers {written}, the manifest says {entry.bbox}")
    ours = (meta.metadata or {}).get(FILE_METADATA_KEY.encode())
    if ours is not None:
        written_at = json.loads(ours).get("data_version")
        if written_at != manifest.data_version:
            problems.append(f"{entry.path} was written at data version {written_at}, the manifest says {manifest.data_version}")
    return problems


def open_snapshot(ref: str, location: str | os.PathLike[str] | None = None) -> ZoneStore:
    """Open a snapshot as a read-only zone store (see :class:`forestguard.stores.snapshot.SnapshotStore`)."""
    from .stores.snapshot import SnapshotStore

    folder, _ = locate(ref, location)
    return SnapshotStore(folder.url)
