"""The ``forestguard`` command line: a thin face over the package.

Exit codes: 0 success, 1 failure (bad input, unreachable store, …), 2 usage
error. Errors are one line on stderr; tracebacks only with FORESTGUARD_DEBUG=1.
Sub-commands live in their own modules and are imported only when used, so
``forestguard stats`` never pays for Panel or papermill imports.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
from types import SimpleNamespace

import click

from ..config import debug, redact
from ..errors import UserError

#: Whether the command line is this process's own (``main()`` without arguments), not a call from Python.
_process = SimpleNamespace(one_shot=False)

#: command name -> "module:attribute" (relative to this package)
COMMANDS: dict[str, str] = {
    "ingest": ".zones:ingest_command",
    "stats": ".zones:stats_command",
    "map": ".maps:map_command",
    "demo": ".zones:demo_command",
    "db": ".db:db_group",
    "snapshot": ".snapshot:snapshot_group",
    "cache": ".cache:cache_group",
    "report": ".report:report_group",
    "pipeline": ".pipeline:pipeline_group",
    "serve": ".serve:serve_command",
    "area": ".areas:area_group",
    "alerts": ".alerts:alerts_group",
    "layers": ".layers:layers_group",
    "evidence": ".evidence:evidence_group",
}


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module, __name__) is not None


class LazyGroup(click.Group):
    """Imports a sub-command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, attribute = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(module, __name__), attribute)
        if _process.one_shot:
            # What is imported lives as long as this process: frozen out of the collector's full
            # walks, which otherwise revisit it over and over while zones are read (an ingest of
            # 1M zones spent 0.67 s collecting, 0.22 s once frozen).
            gc.freeze()
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="forestguard")
def cli() -> None:
    """ForestGuard: deforestation zones in, statistics, reports and maps out.

    \b
    Example:
      forestguard demo --zones 100000
      forestguard stats --by year
    """


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit."""
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The ``forestguard`` program; ``argv=None`` means this process's own arguments."""
    _process.one_shot = argv is None
    try:
        cli.main(args=argv, prog_name="forestguard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # a bug: one line, the traceback on request
        if debug():
            raise
        fail(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} (set FORESTGUARD_DEBUG=1 for the traceback)")
