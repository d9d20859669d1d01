"""The report as one self-contained HTML page: inline CSS and SVG charts, no script, no external asset.

Every text that comes from the image (paths, history) or the Dockerfile goes through ``escape``. Each
chart is an ``<svg role="img">`` with a title and description, followed by the same numbers as a table;
the page reflows to a phone's width (the charts scale, long lines wrap, wide tables scroll).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from dockyard.record import record
from dockyard.tools.analyze.waste import plain_command
from dockyard.tools.report.core import LineEntry, Report

_COLORS = {"error": "#b71c1c", "critical": "#6a1b9a", "high": "#b71c1c", "warning": "#bf4f00",
           "medium": "#bf4f00", "info": "#2e6b30", "low": "#2e6b30", "style": "#1554a0", "unknown": "#616161"}
_ORDER = ("critical", "error", "high", "warning", "medium", "info", "low", "style", "unknown")

_CSS = """
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;padding:16px;max-width:1100px;color:#1a1a1a}
header,.note{overflow-wrap:anywhere}h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #ccc}h3{font-size:15px;margin:16px 0 6px}
.kpis{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0;padding:0;list-style:none}
.kpi{background:#f2f2f2;border-radius:6px;padding:6px 12px}.kpi b{display:block;font-size:18px}
figure{margin:0 0 12px}svg{width:100%;max-width:640px;height:auto;display:block}
svg text{font:14px system-ui,sans-serif}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
code,pre,.src{font:13px/1.45 ui-monospace,monospace}
.sev{color:#fff;border-radius:3px;padding:0 5px;font-size:12px;white-space:nowrap}.note{color:#555}
.src{list-style:none;margin:0;padding:0;border:1px solid #ddd;border-radius:4px}
.src>li{display:flex;gap:10px;padding:1px 8px}.src>li.hit{background:#fff6e0}
.src .n{color:#666;min-width:2.5em;text-align:right;user-select:none}
.src .t{white-space:pre-wrap;overflow-wrap:anywhere;flex:1}
.ann{margin:2px 0 6px;padding-left:18px;font:13px/1.4 system-ui,sans-serif}
details{margin:4px 0 12px}summary{cursor:pointer;color:#1554a0}
@media (max-width:600px){body{padding:8px;font-size:14px}.src>li{gap:6px;padding:1px 4px}}
"""


@record(frozen=True, slots=True)
class Bar:
    """One bar of a chart: its label, value, colour and (optionally) the page anchor it links to."""

    label: str
    value: float
    color: str = "#1554a0"
    href: str = ""


def _si(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def bar_chart(chart: str, title: str, bars: Sequence[Bar], unit: str = "bytes", what: str = "item") -> str:
    """A horizontal bar chart as inline SVG (label above each bar, so it stays legible when it shrinks
    to a phone's width), with its title and a description for screen readers and its data as a table."""
    width, row_h = 480, 44
    height = 8 + row_h * max(1, len(bars))
    peak = max((b.value for b in bars), default=0) or 1
    shown = [(b, _si(b.value) if unit == "bytes" else f"{b.value:.0f}") for b in bars]
    desc = "; ".join(f"{b.label}: {number}" for b, number in shown) or "nothing to show"
    parts = [f'<figure><svg data-chart="{escape(chart)}" role="img" aria-labelledby="{chart}-t {chart}-d" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart}-t">{escape(title)}</title><desc id="{chart}-d">{escape(desc)}</desc>']
    if not bars:
        parts.append('<text x="0" y="30" fill="#555">nothing to show</text>')
    for i, (bar, number) in enumerate(shown):
        y = 4 + i * row_h
        w = max(2.0, (width - 80) * bar.value / peak) if bar.value else 0
        row = (f'<text x="0" y="{y + 16}">{escape(_short(bar.label))}</text>'
               f'<rect class="bar" x="0" y="{y + 21}" width="{w:.1f}" height="16" fill="{bar.color}">'
               f"<title>{escape(bar.label)}: {escape(number)}</title></rect>"
               f'<text x="{w + 6:.1f}" y="{y + 34}">{escape(number)}</text>')
        parts.append(f'<a href="{escape(bar.href)}">{row}</a>' if bar.href else row)
    parts.append(f"</svg><figcaption class=\"note\">{escape(title)}</figcaption></figure>")
    head = "bytes" if unit == "bytes" else "count"
    parts.append(f'<details><summary>{escape(title)} as a table</summary><div class="scroll">'
                 f'<table data-table="{escape(chart)}"><tr><th>{escape(what)}</th>'
                 f'<th class="num">{head}</th></tr>')
    parts += [f'<tr><td>{escape(b.label)}</td><td class="num">{escape(n)}</td></tr>' for b, n in shown]
    parts.append("</table></div></details>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The whole page."""
    a = report.analysis
    waste = a.waste
    layer_bars = []
    mapped = [i for i, line in enumerate(report.layer_lines) if line]
    for r in a.layers:
        line = report.layer_lines[r.index]
        where = (f" (line {line})" if line else "" if not report.dockerfile
                 else " (base image)" if not mapped or r.index < mapped[0] else " (no line)")
        layer_bars.append(Bar(f"#{r.index}{where}: {plain_command(r.command) or '(no history)'}",
                              float(r.size), "#1554a0", f"#L{line}" if line else ""))
    counts = report.severity_counts()
    sev_bars = [Bar(k, float(counts[k]), _COLORS.get(k, "#616161")) for k in _ORDER if counts.get(k)]
    dir_bars = [Bar(d, float(n), "#bf4f00") for d, n in report.waste_by_directory()]
    kpis = [("image size", _si(a.size)), ("removable", _si(waste.total if waste else 0)),
            ("dive wastedBytes", _si(a.wasted)), ("dive efficiency", f"{a.efficiency * 100:.2f} %"),
            ("lint findings", str(len(report.lint))),
            ("vulnerabilities", str(len(report.vulnerabilities)) if not report.vuln_note else "n/a")]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>dockyard report: {escape(report.image)}</title><style>{_CSS}</style></head><body>",
           f"<header><h1>{escape(report.image)}</h1><div class=\"note\">{escape(a.image_id)}</div>",
           '<ul class="kpis">'
           + "".join(f'<li class="kpi">{escape(k)}<b>{escape(v)}</b></li>' for k, v in kpis) + "</ul>",
           *(f'<p class="note">{escape(n)}</p>' for n in report.notes), "</header><main>",
           "<section><h2>Layers</h2>", bar_chart("layers", "Layer sizes", layer_bars, what="layer"),
           "</section><section><h2>Removable bytes</h2>",
           '<p class="note">Each byte a later layer overwrote or deleted, counted once (dive counts the copy '
           "that stays too).</p>",
           bar_chart("waste", "Removable bytes by directory", dir_bars, what="directory"),
           _fixes(report), "</section><section><h2>Findings</h2>",
           bar_chart("severity", "Findings by severity", sev_bars, "count", "severity"),
           _dockerfile(report), _lint_table(report), _vuln_table(report), "</section></main></body></html>"]
    return "\n".join(p for p in out if p) + "\n"


def _badge(level: str) -> str:
    color = _COLORS.get(level.lower(), "#616161")
    return f'<span class="sev" style="background:{color}">{escape(level)}</span>'


def _annotations(e: LineEntry) -> str:
    items = [f'<li class="finding">{_badge(f.severity)} <code>{escape(f.code)}</code> '
             f"{escape(f.message)}</li>" for f in e.lint]
    if e.removable:
        fixes = escape("; ".join(e.fixes))
        items.append(f"<li>{_badge('warning')} {_si(e.removable)} removable: {fixes}</li>")
    items += [f'<li class="vuln">{_badge(v.severity)} {escape(v.id)}: {escape(v.package)} {escape(v.version)}'
              + (f" (fixed in {escape(v.fixed)})" if v.fixed else "") + "</li>" for v in e.vulnerabilities]
    return f'<ul class="ann">{"".join(items)}</ul>' if items else ""


def _dockerfile(report: Report) -> str:
    """The Dockerfile, each line numbered (anchor ``#L<n>``), findings under the line that caused them."""
    if not report.dockerfile:
        return ""
    by_line = {e.line: e for e in report.lines}
    rows = ["<h3>Dockerfile</h3>", '<ol class="src" aria-label="The Dockerfile with its findings">']
    for n, text in enumerate(report.dockerfile.splitlines(), 1):
        e = by_line.get(n)
        ann = _annotations(e) if e else ""
        hit = ' class="hit"' if ann else ""
        rows.append(f'<li id="L{n}"{hit}><span class="n">{n}</span>'
                    f'<div class="t"><code>{escape(text)}</code>{ann}</div></li>')
    rows.append("</ol>")
    return "".join(rows)


def _lint_table(report: Report) -> str:
    if not report.lint:
        return ""
    rows = ['<h3>Lint</h3><div class="scroll"><table id="lint"><tr><th>line</th><th>level</th><th>rule</th>'
            "<th>message</th></tr>"]
    rows += [f'<tr><td><a href="#L{f.line}">{f.line}</a></td><td>{_badge(f.severity)}</td>'
             f"<td><code>{escape(f.code)}</code></td><td>{escape(f.message)}</td></tr>" for f in report.lint]
    rows.append("</table></div>")
    return "".join(rows)


def _vuln_table(report: Report) -> str:
    if not report.vulnerabilities:
        return ""
    rows = ['<h3>Vulnerabilities</h3><div class="scroll"><table id="vulnerabilities"><tr><th>id</th>'
            "<th>severity</th><th>package</th><th>fixed in</th><th>line</th></tr>"]
    rows += [f"<tr><td>{escape(v.id)}</td><td>{_badge(v.severity)}</td><td>{escape(v.package)} "
             f"{escape(v.version)}</td><td>{escape(v.fixed)}</td><td>"
             + (f'<a href="#L{v.line}">{v.line}</a>' if v.line else "") + "</td></tr>"
             for v in report.vulnerabilities]
    rows.append("</table></div>")
    return "".join(rows)


def _fixes(report: Report) -> str:
    waste = report.analysis.waste
    if not waste or not waste.layers:
        return ""
    rows = ['<h3>What to change</h3><div class="scroll"><table id="fixes"><tr><th>layer</th><th>line</th>'
            '<th class="num">bytes</th><th>kinds</th><th>fix</th></tr>']
    for lw in waste.layers:
        kinds = ", ".join(f"{k} {_si(v)}" for k, v in lw.by_kind.items())
        line = f'<a href="#L{lw.line}">{lw.line}</a>' if lw.line else ""
        rows.append(f'<tr><td>#{lw.index}</td><td>{line}</td><td class="num">{_si(lw.removable)}</td>'
                    f"<td>{escape(kinds)}</td><td>{escape(lw.fix)}</td></tr>")
    rows.append("</table></div>")
    return "".join(rows)
