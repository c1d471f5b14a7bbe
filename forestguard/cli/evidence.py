"""``forestguard evidence compute|show|status|runs|apply|applied|plots``: why a zone is legal or illegal, and plots at risk."""

from __future__ import annotations

import json
import sys

import click
from tqdm import tqdm

from .. import stores
from .options import db_option, list_format_option

rules_option = click.option(
    "--rules", "rules_path", default=None, metavar="FILE",
    help="Evidence rules (TOML). Default: $FORESTGUARD_EVIDENCE_RULES, then the rules shipped with ForestGuard.",
)


def _echo_records(records: list, fmt: str, empty: str, line) -> None:
    """Records (each with ``to_dict``) as a JSON list, or a line each (``empty`` when there are none)."""
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in records], ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo(empty)
    for r in records:
        click.echo(line(r))


@click.group("evidence")
def evidence_group() -> None:
    """Evidence from reference layers: findings per zone, a suggested class, plots' risk.

    \b
    Example:
      forestguard evidence compute
      forestguard evidence show 1234 --format json
      forestguard evidence plots plots.geojson --id plot_id --cutoff 2020-12-31 --format csv
    """


@evidence_group.command("compute")
@db_option
@rules_option
@click.option("--full", is_flag=True, help="Measure every zone against every layer again (default: only what changed since the last run).")
def compute_command(db, rules_path, full):
    """Measure zones against the reference layers and suggest each a class, redoing only what changed.

    Zones added or changed since the last run are measured against every layer, layers added
    since against the zones they may meet; suggestions follow the rules (a new rules version
    evaluates them all again). Stored classifications are never changed (see evidence apply).

    \b
    Example:
      forestguard evidence compute --rules my_rules.toml
    """
    from ..evidence.compute import compute_evidence
    from ..evidence.rules import load_rules

    rules = load_rules(rules_path)
    with stores.open(db) as store, tqdm(unit="zone", unit_scale=True, desc="evidence", file=sys.stderr, disable=None, leave=False) as bar:
        report = compute_evidence(store, rules, full=full, on_rows=bar.update)
    for line in report.lines():
        click.echo(line)


@evidence_group.command("show")
@click.argument("zone_id", type=int)
@db_option
@list_format_option
def show_command(zone_id, db, fmt):
    """One zone's stored class, the suggested one and its findings, each with the layer's source and date.

    \b
    Example:
      forestguard evidence show 1234 --format json
    """
    with stores.open(db, read_only=True) as store:
        evidence = store.zone_evidence(zone_id)
    if fmt == "json":
        click.echo(json.dumps(evidence.to_dict(), ensure_ascii=False, indent=2))
        return
    suggested = evidence.suggested or "(not computed: run 'forestguard evidence compute')"
    because = f" ({evidence.rule}; rules {evidence.rules_version})" if evidence.rule else (f" (rules {evidence.rules_version})" if evidence.rules_version else "")
    click.echo(f"zone {evidence.zone_id} ({evidence.year}): classification {evidence.classification or '(none)'}, suggested {suggested}{because}")
    if not evidence.findings:
        click.echo("no findings: the zone shares no area with any reference layer")
    for f in evidence.findings:
        valid = "in force in the zone's year" if f.valid_at_zone_year else "NOT in force in the zone's year"
        click.echo(f"  {f.kind:<16} {f.layer!r} feature {f.feature_id!r}: {f.overlap_ha:,.2f} ha ({f.overlap_share:.1%} of the zone), {valid}; "
                   f"source {f.source!r}, as of {f.as_of}")


@evidence_group.command("status")
@db_option
@rules_option
@list_format_option
def status_command(db, rules_path, fmt):
    """What the stored evidence was computed from, and what a compute would redo now.

    \b
    Example:
      forestguard evidence status
    """
    from ..evidence.rules import load_rules

    rules = load_rules(rules_path)
    with stores.open(db, read_only=True) as store:
        state, layers, version = store.evidence_state(), store.reference_layers(), store.data_version()
    current = {layer.name: layer.version for layer in layers}
    previous = state.layers if state else {}
    status = {
        "computed": state is not None,
        "computed_at": None if state is None or state.computed_at is None else state.computed_at.isoformat(timespec="seconds"),
        "rules_version": None if state is None else state.rules_version,
        "rules_version_now": rules.version,
        "zones_changed": state is None or state.data_version != version,
        "layers_to_measure": sorted(n for n, v in current.items() if previous.get(n) != v),
        "layers_to_drop": sorted(n for n, v in previous.items() if current.get(n) != v),
    }
    status["up_to_date"] = bool(state) and not (status["zones_changed"] or status["layers_to_measure"] or status["layers_to_drop"]
                                                or state.rules_version != rules.version)
    if fmt == "json":
        click.echo(json.dumps(status, ensure_ascii=False, indent=2))
        return
    if state is None:
        click.echo("evidence never computed: run 'forestguard evidence compute'")
        return
    click.echo(f"computed {status['computed_at']} with rules {state.rules_version!r} (rules now {rules.version!r})")
    click.echo("up to date" if status["up_to_date"] else
               f"out of date: zones changed {status['zones_changed']}; layers to measure {status['layers_to_measure'] or 'none'}; "
               f"layers to drop {status['layers_to_drop'] or 'none'}")


@evidence_group.command("runs")
@db_option
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=20, show_default=True)
@list_format_option
def runs_command(db, limit, fmt):
    """Each evidence run, newest first: the rules version and sha256 and the layers it used, and what it did.

    \b
    Example:
      forestguard evidence runs --format json
    """
    def line(r) -> str:
        layers = ", ".join(f"{name!r} v{version}" for name, version in sorted(r.layers.items())) or "none"
        return (f"{r.computed_at:%Y-%m-%d %H:%M:%S} rules {r.rules_version!r} (sha256 {r.rules_sha256[:12]}…) data version {r.data_version}: "
                f"{r.zones_measured:,} zones measured, {r.findings_written:,} findings, {r.suggestions_evaluated:,} suggestions; layers {layers}")

    with stores.open(db, read_only=True) as store:
        _echo_records(store.evidence_runs(limit), fmt, "evidence never computed: run 'forestguard evidence compute'", line)


@evidence_group.command("apply")
@db_option
@rules_option
@click.option("--only-unclassified", is_flag=True, help="Required: write suggestions only into zones without a classification.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def apply_command(db, rules_path, only_unclassified, dry_run):
    """Write each suggestion (legal or illegal) into zones that have no classification, recording every change.

    A stored classification is never overwritten. The evidence must be up to date with the
    zones and computed with the rules given.

    \b
    Example:
      forestguard evidence apply --only-unclassified --dry-run
    """
    from ..errors import UserError
    from ..evidence.compute import check_rules
    from ..evidence.rules import load_rules

    if not only_unclassified:
        raise click.UsageError("evidence apply only fills zones without a classification and never overwrites one: give --only-unclassified")
    rules = load_rules(rules_path)
    with stores.open(db, read_only=dry_run) as store:
        state = store.evidence_state()
        check_rules(state, rules)
        if state is None or state.rules_version != rules.version or state.data_version != store.data_version():
            raise UserError("the evidence is not up to date with the zones and these rules: run 'forestguard evidence compute' first")
        changes = store.apply_suggestions(rules_version=rules.version, dry_run=dry_run)
    counted: dict[str, int] = {}
    for change in changes:
        counted[change.classification] = counted.get(change.classification, 0) + 1
    by_class = ", ".join(f"{k} {v:,}" for k, v in sorted(counted.items())) or "none"
    verb = "would classify" if dry_run else "classified"
    click.echo(f"{verb} {len(changes):,} unclassified zone(s) from their suggestions ({by_class}); rules {rules.version!r}"
               + ("" if dry_run else "; recorded (see 'forestguard evidence applied')"))


@evidence_group.command("applied")
@db_option
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@list_format_option
def applied_command(db, limit, fmt):
    """The classifications evidence apply wrote, newest first.

    \b
    Example:
      forestguard evidence applied --format json
    """
    with stores.open(db, read_only=True) as store:
        _echo_records(store.applied_changes(limit), fmt, "(evidence apply has changed nothing)",
                      lambda c: f"{c.applied_at:%Y-%m-%d %H:%M} zone {c.zone_id}: (none) → {c.classification}  ({c.rule or 'default'}; rules {c.rules_version})")


@evidence_group.command("plots")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--id", "id_field", required=True, metavar="FIELD", help="The field naming each plot (unique).")
@click.option("--cutoff", required=True, metavar="DATE", help="Clearing after this date puts a plot at risk (the EUDR's is 2020-12-31).")
@db_option
@rules_option
@click.option("--repair", is_flag=True, help="Repair invalid plots (make_valid) instead of refusing them.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def plots_command(file, id_field, cutoff, db, rules_path, repair, fmt):
    """Risk of each plot of FILE: clearing after the cut-off inside it, overlaps by layer kind, a verdict and its reasons.

    \b
    Example:
      forestguard evidence plots plots.geojson --id plot_id --cutoff 2020-12-31 --format json
    """
    from ..areas import read_plots
    from ..evidence.layers import parse_date
    from ..evidence.plots import plot_risk
    from ..evidence.rules import load_rules

    when = parse_date(cutoff, "--cutoff")
    rules = load_rules(rules_path)
    plots = read_plots(file, id_field, repair=repair)
    with stores.open(db, read_only=True) as store:
        report = plot_risk(store, plots, when, rules)
    click.echo(report.to_json(indent=2) if fmt == "json" else report.to_csv(), nl=fmt == "json")
