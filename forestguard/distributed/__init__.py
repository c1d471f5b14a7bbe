"""Statistics, maps and reports of a snapshot on a Dask cluster: the scale-out engine.

A partitioned snapshot (:mod:`forestguard.snapshots`) is the unit of scale-out: one task per
partition file that may hold the zones asked for (the manifest's per-file bbox, countries and
years prune the others unread). Workers fetch and sha256-check their files themselves (a local
folder they share, or S3) and run the embedded engine's own code on them — DuckDB's exact
statistics, the map layer and datashader aggregate of :mod:`forestguard.render` — so only
small results travel back: a few rows per partition, one summed map aggregate.

    with open_store("snapshot:s3://bucket/snapshots/ID", "tcp://scheduler:8786") as store:
        statistics(store, where, by)            # the same rows as the embedded engine's
        store_map(store, where, 1600, 1000)     # the same aggregate (sums up to summation order)

``"local"`` starts a LocalCluster for the store's lifetime (see :func:`cluster`).
"""

from __future__ import annotations

from .cluster import LOCAL, cluster, probe, scheduler_for
from .store import DaskSnapshotStore, check_usable, open_for_reading, open_store, scheduler_of

__all__ = ["LOCAL", "DaskSnapshotStore", "check_usable", "cluster", "open_for_reading", "open_store", "probe", "scheduler_for", "scheduler_of"]
