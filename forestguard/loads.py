"""Load records: what each ingest put in the store, so a file is never counted twice.

Every ingest writes, in its own transaction, one record per input file: the file's name,
the sha256 of its bytes, the zones it gave and the data version the load committed. Loading
a file whose content is already recorded is refused (``--again`` forces it), and
``forestguard ingest --status FILE`` answers whether a file went in, also after a load
killed between its commit and its success line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd

from .errors import InputError, UserError

LOADS_TABLE = "forestguard_loads"
#: Files a Shapefile is made of besides the .shp (its attributes, index and CRS are part of the content).
_SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")
_CHUNK = 1 << 20


@dataclass
class FileLoad:
    """One input file of an ingest: its name, its content's sha256, the zones it gave (counted as they pass)."""

    file: str
    sha256: str
    rows: int = 0


@dataclass(frozen=True)
class LoadRecord:
    id: int
    file: str | None
    sha256: str | None
    rows: int
    loaded_at: datetime
    data_version: int

    def describe(self) -> str:
        at = self.loaded_at.astimezone(timezone.utc) if self.loaded_at.tzinfo else self.loaded_at  # naive: stored as UTC
        when = at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"load {self.id} of {self.file} on {when} ({self.rows:,} zones, data version {self.data_version})"


class AlreadyLoaded(UserError):
    """A file whose content the store has already loaded: nothing was loaded this time."""

    def __init__(self, file: str, earlier: LoadRecord) -> None:
        self.file = file
        self.earlier = earlier
        super().__init__(f"{file}: already loaded ({earlier.describe()}); nothing was loaded (use --again to load it once more)")


def file_sha256(path: str | Path) -> str:
    """sha256 of a source's content: the file's bytes (a Shapefile's parts and a folder's files included, in order)."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        parts = _parts(path)
        for part in parts:
            if len(parts) > 1:
                digest.update(f"{part.relative_to(path.parent)}\0".encode())
            with part.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except PermissionError:  # the words the readers use
        raise InputError(str(path), "permission denied") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _parts(path: Path) -> list[Path]:
    if path.is_dir():  # a FileGDB is a folder
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.suffix.lower() == ".shp":
        siblings = [path.with_suffix(s) for s in _SHAPEFILE_PARTS] + [path.with_suffix(s.upper()) for s in _SHAPEFILE_PARTS]
        return [path, *sorted({p for p in siblings if p.is_file()})]
    return [path]


def plan(paths: Sequence[str | Path]) -> list[FileLoad]:
    """A FileLoad per path; the same content under two names in one run is refused like the same file twice."""
    files: list[FileLoad] = []
    seen: dict[str, str] = {}
    for path in paths:
        sha = file_sha256(path)
        if sha in seen:
            raise UserError(f"{path}: same content as {seen[sha]}; each file is loaded once")
        seen[sha] = str(path)
        files.append(FileLoad(str(path), sha))
    return files


def counted(batches: Iterable[pd.DataFrame], files: Sequence[FileLoad]) -> Iterator[pd.DataFrame]:
    """Pass zone batches through, adding each batch's zones to its file's count (validated zones name their file)."""
    by_name = {f.file: f for f in files}
    for batch in batches:
        if by_name and len(batch) and "file" in batch:
            for name, n in batch["file"].value_counts(sort=False).items():
                if n and str(name) in by_name:
                    by_name[str(name)].rows += int(n)
        yield batch


def refuse_repeats(files: Sequence[FileLoad], earlier: dict[str, LoadRecord]) -> None:
    """Raise :class:`AlreadyLoaded` for the first file whose content has a load record (``earlier``: by sha256)."""
    for f in files:
        if f.sha256 in earlier:
            raise AlreadyLoaded(f.file, earlier[f.sha256])
