"""``dockyard analyze``: layer sizes and commands, wasted bytes and efficiency (like ``dive --ci``)."""

from __future__ import annotations

import json
import math
import os
import sys

import click

from dockyard.errors import DockyardError
from dockyard.tools.analyze import Analysis


def si_bytes(n: float) -> str:
    """go-humanize's Bytes: ``6549`` -> ``6.5 kB``, ``32025`` -> ``32 kB``."""
    if n < 10:
        return f"{int(n)} B"
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    e = min(math.floor(math.log(n) / math.log(1000)), len(units) - 1)
    val = math.floor(n / 1000**e * 10 + 0.5) / 10
    return (f"{val:.1f} {units[e]}" if val < 10 else f"{val:.0f} {units[e]}")


def _one_line(command: str, width: int = 70) -> str:
    text = " ".join(command.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@click.command("analyze")
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--ci", is_flag=True, help="Check dive's CI rules and exit 1 when one fails.")
@click.option("--lowest-efficiency", default=None, metavar="RATIO",
              help="Lowest allowed efficiency, 0..1 or 'disabled' (default 0.9).")
@click.option("--highest-wasted-bytes", default=None, metavar="BYTES",
              help="Highest allowed wasted bytes, e.g. 20MB, or 'disabled' (default disabled).")
@click.option("--highest-user-wasted-percent", default=None, metavar="RATIO",
              help="Highest allowed wasted share of the user layers, 0..1 or 'disabled' (default 0.1).")
@click.option("--ci-config", default=None, metavar="FILE",
              help="dive's .dive-ci YAML with rules (default: ./.dive-ci when it exists); flags override it.")
@click.option("--top", default=20, show_default=True, metavar="N", help="Wasted files to list in the table.")
@click.option("-i", "--interactive", is_flag=True,
              help="Browse the layers and each one's file changes in the terminal (needs textual).")
@click.option("-f", "--file", "dockerfile", default=None, metavar="DOCKERFILE",
              help="The Dockerfile the image was built from: removable bytes are blamed on its lines.")
@click.pass_context
def analyze_cmd(ctx: click.Context, image: str, fmt: str, ci: bool, lowest_efficiency: str | None,
                highest_wasted_bytes: str | None, highest_user_wasted_percent: str | None,
                ci_config: str | None, top: int, interactive: bool, dockerfile: str | None) -> None:
    """Show each layer's size and command, and the bytes an image wastes on overwritten or deleted files."""
    from dockyard.cli.image_cmds import make_client
    from dockyard.tools.analyze import analyze_image, evaluate, load_ci_config, to_json

    if ci_config is None and ci and os.path.exists(".dive-ci"):
        ci_config = ".dive-ci"
    rules = load_ci_config(ci_config) if ci_config else {}
    rules |= {k: v for k, v in (("lowestEfficiency", lowest_efficiency),
                               ("highestWastedBytes", highest_wasted_bytes),
                               ("highestUserWastedPercent", highest_user_wasted_percent)) if v is not None}
    text = None
    if dockerfile is not None:
        try:
            with open(dockerfile, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise click.ClickException(f"cannot read {dockerfile}: {exc.strerror}") from None
    with make_client(ctx) as client:
        analysis = analyze_image(client, image, text,
                                 dockerfile_name=os.path.basename(dockerfile) if dockerfile else "Dockerfile")
    if interactive:
        try:
            from dockyard.cli.analyze_tui import AnalyzeApp
        except ImportError:
            raise click.ClickException("--interactive needs textual: pip install 'dockyard[tui]'") from None
        AnalyzeApp(analysis).run()
        return
    report = evaluate(analysis, rules) if (ci or rules) else None
    if fmt == "json":
        doc = to_json(analysis)
        if report is not None:
            doc["ci"] = {"passed": report.passed,
                         "rules": [{"name": r.name, "status": r.status, "message": r.message}
                                   for r in report.results]}
        click.echo(json.dumps(doc, indent=2))
    else:
        out: list[str] = [f"Image: {image} ({analysis.image_id})", "Layers:",
                          f"  {'#':>3}  {'Size':>9}  {'Added':>6}  {'Modified':>8}  {'Removed':>7}  Command"]
        for r in analysis.layers:
            out.append(f"  {r.index:>3}  {si_bytes(r.size):>9}  {r.added:>6}  {r.modified:>8}  "
                       f"{r.removed:>7}  {_one_line(r.command)}")
        pct = analysis.user_wasted_percent
        out += ["Analysis:",
                f"  total size: {analysis.size} bytes ({si_bytes(analysis.size)})",
                f"  efficiency: {analysis.efficiency * 100:.4f} %",
                f"  wastedBytes: {analysis.wasted} bytes ({si_bytes(analysis.wasted)})",
                f"  userWastedPercent: {pct * 100:.4f} %" if pct != math.inf
                else "  userWastedPercent: +Inf %",
                "Inefficient Files:", "Count  Wasted Space  File Path"]
        shown = [w for w in analysis.wasted_files if w.size > 0][:top]
        out += [f"{w.count:>5}  {si_bytes(w.size):>12}  {w.path}" for w in shown]
        if not shown:
            out.append("None")
        out += _removable(analysis, dockerfile, top)
        if report is not None:
            out.append("Results:")
            for rule in report.results:
                out.append(f"  {rule.status}: {rule.name}" + (f": {rule.message}" if rule.message else ""))
            out.append(f"Result:{'PASS' if report.passed else 'FAIL'} [Total:{len(report.results)}] "
                       f"[Passed:{report.count('PASS')}] [Failed:{report.count('FAIL')}] [Warn:0] "
                       f"[Skipped:{report.count('SKIP')}]")
        click.echo("\n".join(out))
    if report is not None and ci and not report.passed:
        failed = next(r for r in report.results if r.status == "FAIL")
        sys.stdout.flush()
        raise _CiFailed(f"CI rule {failed.name} failed: {failed.message}")


def _removable(analysis: Analysis, dockerfile: str | None, top: int) -> list[str]:
    """The removable-bytes section: each lower copy counted once, by the layer that made it removable."""
    waste = analysis.waste
    if waste is None:
        return []
    user = analysis.user_size
    share = f" ({waste.total / user * 100:.1f} % of the user layers)" if user else ""
    out = ["Removable (each byte once; dive's wastedBytes counts the copy that stays too):",
           f"  removable: {waste.total} bytes ({si_bytes(waste.total)}){share}"]
    for lw in waste.layers[:top]:
        kinds = ", ".join(f"{kind} {si_bytes(size)}" for kind, size in sorted(
            lw.by_kind.items(), key=lambda kv: -kv[1]))
        where = f"{dockerfile}:{lw.line}" if dockerfile and lw.line else f"layer {lw.index}"
        out.append(f"  {si_bytes(lw.removable):>9}  {where}: {_one_line(lw.command, 60)}")
        out.append(f"             {lw.files} file{'s' if lw.files != 1 else ''}: {kinds}")
        out.append(f"             fix: {lw.fix}")
    return out


class _CiFailed(DockyardError):
    """A --ci rule failed (exit 1; the rule and its numbers are in the message)."""
