"""The dashboard server: Panel/Bokeh with health, readiness, metrics and the stats API.

``forestguard serve`` (:mod:`forestguard.cli.serve`) builds it with
:func:`forestguard.server.app.serve`. This module stays import-light: the
serve command must be able to configure Prometheus before prometheus_client
is imported anywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_multiprocess_dir: Path | None = None


def enable_multiprocess_metrics() -> Path:
    """Give prometheus_client a fresh shared folder (call before it is imported; needed with workers > 1)."""
    global _multiprocess_dir
    _multiprocess_dir = Path(tempfile.mkdtemp(prefix="forestguard-metrics-"))
    os.environ[_MULTIPROC_ENV] = str(_multiprocess_dir)  # prometheus_client reads it at import
    return _multiprocess_dir


def multiprocess_metrics_dir() -> Path | None:
    return _multiprocess_dir
