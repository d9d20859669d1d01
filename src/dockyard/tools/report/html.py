"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no external asset."""

from __future__ import annotations

from html import escape

from dockyard.tools.analyze.waste import plain_command
from dockyard.tools.report.core import Report

_COLORS = {"error": "#c62828", "critical": "#7b1fa2", "high": "#c62828", "warning": "#ef6c00",
           "medium": "#ef6c00", "info": "#2e7d32", "low": "#2e7d32", "style": "#1565c0", "unknown": "#757575"}
_ORDER = ("critical", "error", "high", "warning", "medium", "info", "low", "style", "unknown")

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.kpi{background:#f5f5f5;border-radius:6px;padding:8px 12px}.kpi b{display:block;font-size:18px}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
code,pre{font:12px/1.4 ui-monospace,monospace}
.sev{color:#fff;border-radius:3px;padding:0 5px;font-size:12px}.note{color:#666}svg text{font:12px sans-serif}
"""

# Counts each chart's bars once the page is up (a headless browser test reads these back).
_SCRIPT = """
document.querySelectorAll('svg[data-chart]').forEach(function(s){
  s.setAttribute('data-bars', s.querySelectorAll('rect.bar').length);});
document.body.setAttribute('data-ready', '1');
"""


def _si(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def bar_chart(chart: str, title: str, rows: list[tuple[str, float, str]], value_label: str = "bytes") -> str:
    """A horizontal bar chart as inline SVG: one bar per ``(label, value, colour)``."""
    width, label_w, row_h = 1040, 420, 22
    height = 30 + row_h * max(1, len(rows))
    peak = max((v for _, v, _ in rows), default=0) or 1
    parts = [f'<svg data-chart="{escape(chart)}" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    if not rows:
        parts.append('<text x="0" y="42" fill="#666">nothing to show</text>')
    for i, (label, value, color) in enumerate(rows):
        y = 26 + i * row_h
        w = max(1.0, (width - label_w - 90) * value / peak) if value else 0
        shown = label if len(label) <= 60 else label[:57] + "..."
        number = _si(value) if value_label == "bytes" else f"{value:.0f}"
        parts += [f'<text x="0" y="{y + 14}">{escape(shown)}</text>',
                  f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                  f'fill="{color}"><title>{escape(label)}: {escape(number)}</title></rect>',
                  f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{escape(number)}</text>']
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The whole page."""
    a = report.analysis
    waste = a.waste
    removable = waste.total if waste else 0
    layer_rows = []
    for r in a.layers:
        line = report.layer_lines[r.index]
        where = f"line {line}" if line else ("base" if r.index == 0 or line is None else "")
        layer_rows.append((f"#{r.index} {where}: {plain_command(r.command)}", float(r.size), "#1565c0"))
    counts = report.severity_counts()
    sev_rows = [(k, float(counts[k]), _COLORS.get(k, "#757575")) for k in _ORDER if counts.get(k)]
    dir_rows = [(d, float(n), "#ef6c00") for d, n in report.waste_by_directory()]
    kpis = [("image size", _si(a.size)), ("removable", _si(removable)), ("dive wastedBytes", _si(a.wasted)),
            ("dive efficiency", f"{a.efficiency * 100:.2f} %"), ("lint findings", str(len(report.lint))),
            ("vulnerabilities", str(len(report.vulnerabilities)) if not report.vuln_note else "n/a")]
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>dockyard report: {escape(report.image)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{escape(report.image)}</h1><div class=\"note\">{escape(a.image_id)}</div>",
           '<div class="kpis">'
           + "".join(f'<div class="kpi">{escape(k)}<b>{escape(v)}</b></div>' for k, v in kpis) + "</div>",
           "<h2>Layers</h2>", bar_chart("layers", "Layer sizes", layer_rows),
           "<h2>Removable bytes</h2>",
           '<p class="note">Each byte a later layer overwrote or deleted, counted once (dive counts the copy '
           "that stays too).</p>",
           bar_chart("waste", "Removable bytes by directory", dir_rows),
           "<h2>Findings</h2>", bar_chart("severity", "Findings by severity", sev_rows, "count")]
    out += [f'<p class="note">{escape(n)}</p>' for n in report.notes]
    out.append(_by_line(report))
    out.append(_lint_table(report))
    out.append(_vuln_table(report))
    if waste and waste.layers:
        out.append("<h2>Fixes for the removable bytes</h2><table><tr><th>layer</th><th>line</th>"
                   "<th>bytes</th><th>kinds</th><th>fix</th></tr>")
        for lw in waste.layers:
            kinds = ", ".join(f"{k} {_si(v)}" for k, v in lw.by_kind.items())
            out.append(f"<tr><td>#{lw.index}</td><td>{lw.line or ''}</td><td>{_si(lw.removable)}</td>"
                       f"<td>{escape(kinds)}</td><td>{escape(lw.fix)}</td></tr>")
        out.append("</table>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def _badge(level: str) -> str:
    color = _COLORS.get(level.lower(), "#757575")
    return f'<span class="sev" style="background:{color}">{escape(level)}</span>'


def _by_line(report: Report) -> str:
    if not report.lines:
        return ""
    rows = ["<h2>By Dockerfile line</h2><table id=\"by-line\"><tr><th>line</th><th>instruction</th>"
            "<th>lint</th><th>removable</th><th>vulnerabilities</th></tr>"]
    for e in report.lines:
        lint = " ".join(f"{_badge(f.severity)} <code>{escape(f.code)}</code>" for f in e.lint)
        vulns = " ".join(f"{_badge(v.severity)} {escape(v.id)}" for v in e.vulnerabilities)
        rows.append(f'<tr data-line="{e.line}"><td>{e.line}</td><td><code>{escape(e.text)}</code></td>'
                    f"<td>{lint}</td><td>{_si(e.removable) if e.removable else ''}</td><td>{vulns}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _lint_table(report: Report) -> str:
    if not report.lint:
        return ""
    rows = ['<h2>Lint</h2><table id="lint"><tr><th>line</th><th>level</th><th>rule</th><th>message</th></tr>']
    rows += [f'<tr class="finding"><td>{f.line}</td><td>{_badge(f.severity)}</td><td><code>{escape(f.code)}'
             f"</code></td><td>{escape(f.message)}</td></tr>" for f in report.lint]
    rows.append("</table>")
    return "".join(rows)


def _vuln_table(report: Report) -> str:
    if not report.vulnerabilities:
        return ""
    rows = ['<h2>Vulnerabilities</h2><table id="vulnerabilities"><tr><th>id</th><th>severity</th>'
            "<th>package</th><th>fixed in</th><th>line</th></tr>"]
    rows += [f'<tr class="vuln"><td>{escape(v.id)}</td><td>{_badge(v.severity)}</td><td>{escape(v.package)} '
             f"{escape(v.version)}</td><td>{escape(v.fixed)}</td><td>{v.line or ''}</td></tr>"
             for v in report.vulnerabilities]
    rows.append("</table>")
    return "".join(rows)
