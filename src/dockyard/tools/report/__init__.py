"""``dockyard report``: lint, size and vulnerability findings of an image, joined on Dockerfile lines.

    report = build_report(client, "app:1", dockerfile_text)   # Report
    render_html(report)    # one self-contained page with inline SVG charts
    to_json(report); to_sarif(report)
"""

from __future__ import annotations

from dockyard.tools.report.core import LineEntry, Report, Vulnerability, build_report, to_json, to_sarif
from dockyard.tools.report.html import Bar, bar_chart, render_html

__all__ = ["Bar", "LineEntry", "Report", "Vulnerability", "bar_chart", "build_report", "render_html",
           "to_json", "to_sarif"]
