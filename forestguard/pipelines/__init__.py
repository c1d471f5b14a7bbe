"""Report pipelines: a YAML file names notebooks and a parameter grid; a run produces every report.

``forestguard pipeline run FILE`` (see :mod:`forestguard.cli.pipeline`) is what
cron, an ECS scheduled task or any scheduler calls. Runs are idempotent: each
item has a run key (notebook code + parameters + source data version), complete
items are skipped, failures are isolated and summarised, and items run on a
local process pool or a Dask cluster.
"""

from __future__ import annotations

from .execute import Outcome, run_item
from .plan import Item, SourceFacts, expand, plan, run_key
from .run import EXECUTORS, PipelineRun, run_pipeline, summary_table
from .spec import PipelineSpec, ReportSpec, load_pipeline
from .state import OutputLayout

__all__ = [
    "EXECUTORS",
    "Item",
    "Outcome",
    "OutputLayout",
    "PipelineRun",
    "PipelineSpec",
    "ReportSpec",
    "SourceFacts",
    "expand",
    "load_pipeline",
    "plan",
    "run_item",
    "run_key",
    "run_pipeline",
    "summary_table",
]
