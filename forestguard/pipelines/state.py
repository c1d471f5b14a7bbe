"""Where a pipeline's reports go, and how an item becomes complete exactly once.

Layout of an output folder::

    <output>/index.html, summary.json
    <output>/<item name>/<item name>.html, .ipynb, stats.json, _COMPLETE.json
    <output>/.staging/…      reports being written (removed when they finish)

With ``s3://`` output (the default when ``S3_BUCKET`` is set) the folder is
built under the data folder (``reports/.pipelines/<name>``) and each item is
published as soon as it is committed, marker last
(:func:`forestguard.storage.publish_dir`); a re-run on a fresh machine reads
the markers back from S3, so scheduled tasks resume without a shared disk.

An item is built in ``.staging`` and moved into place by ``rename`` with its
completion marker already inside (written last), so a run killed at any
moment never leaves a folder that passes for complete: the re-run skips what
is complete for the same run key and redoes the rest. A failed item is moved
into place without a marker, so its error report is linked from the index
and the next run tries it again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import storage
from ..config import settings
from ..errors import UserError
from ..reports.record import write_json_atomic
from ..reports.runner import default_location
from .plan import Item

COMPLETE = "_COMPLETE.json"
FAILED = "_FAILED.json"
STAGING = ".staging"


@dataclass(frozen=True)
class OutputLayout:
    """A pipeline's local output folder, plus the ``s3://`` prefix it is published to (if any)."""

    root: Path
    publish_to: str | None = None

    @classmethod
    def for_output(cls, output: str, name: str) -> "OutputLayout":
        """Local output as given; ``s3://`` output (the default with ``S3_BUCKET``) is built under the data folder, then published."""
        output = output or default_location(name)
        if output.startswith("s3://"):
            return cls(settings().reports_dir / ".pipelines" / name, output.rstrip("/"))
        return cls(Path(output))

    @property
    def location(self) -> str:
        return self.publish_to or str(self.root)

    def item_dir(self, item: Item) -> Path:
        return self.root / item.name

    def completed(self, item: Item) -> dict[str, Any] | None:
        """The item's completion marker if its report is complete for this exact run key.

        With ``s3://`` output the published marker decides (the local folder
        is only where items are built): an item built but not uploaded is not done.
        """
        if self.publish_to:
            remote = storage.at(f"{self.publish_to}/{item.name}")
            marker = _read_json(lambda: remote.read_bytes(COMPLETE) if remote.exists(COMPLETE) else None)
        else:
            marker = _read_json(lambda: (self.item_dir(item) / COMPLETE).read_bytes())
        return marker if marker is not None and marker.get("key") == item.key else None

    def publish_item(self, item: Item) -> None:
        """Upload a committed item, its marker last: a reader who sees the marker sees the whole report."""
        if self.publish_to:
            folder = self.item_dir(item)
            marker = COMPLETE if (folder / COMPLETE).exists() else FAILED
            storage.publish_dir(folder, f"{self.publish_to}/{item.name}/", marker=marker)

    def publish_index(self, *names: str) -> None:
        """Upload the run's index files (summary last, like a marker)."""
        if self.publish_to:
            target = storage.at(self.publish_to)
            for name in names:
                target.put_file(name, self.root / name)

    def check_publishing(self) -> None:
        """Fail now, not after hours of reports, if the ``s3://`` output cannot be reached."""
        if self.publish_to:
            storage.at(self.publish_to).exists("summary.json")

    def staging_dir(self, item: Item) -> Path:
        path = self.root / STAGING / f"{item.name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def commit(self, item: Item, staged: Path, outcome: dict[str, Any]) -> Path:
        """Move a staged report into place; a successful one carries its marker, written last."""
        outcome = {**outcome, "key": item.key, "name": item.name, "parameters": item.parameters,
                   "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(staged / (COMPLETE if outcome["status"] == "ok" else FAILED), outcome)
        target = self.item_dir(item)
        if target.exists():
            retired = self.root / STAGING / f"{item.name}-old-{uuid.uuid4().hex[:8]}"
            os.replace(target, retired)
            os.replace(staged, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staged, target)
        return target

    def clear_staging(self) -> None:
        """Remove what killed runs left half-written (only called under the pipeline lock)."""
        shutil.rmtree(self.root / STAGING, ignore_errors=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One run per output folder at a time: a scheduler that fires while the last run is still going fails fast."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Next to the folder, not in it: nothing in the folder that is not a report or its index.
        with open(self.root.parent / f".{self.root.name}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another run of this pipeline is writing to {self.root}; try again when it ends") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(read: Callable[[], bytes | None]) -> dict[str, Any] | None:
    """A marker's content, or None when it is missing or unreadable (a half-written marker is no marker)."""
    try:
        data = read()
        return None if data is None else json.loads(data)
    except (FileNotFoundError, ValueError):
        return None
