"""``analyze``: per-layer sizes and changes, wasted bytes and efficiency as dive computes them.

    analysis = analyze_image(client, "app:1")   # Analysis(layers, size, wasted, efficiency, wasted_files)
    report = evaluate(analysis, {"lowestEfficiency": "0.95"})   # dive's .dive-ci rules; report.passed
    to_json(analysis)                            # dive's JSON export layout (+ added/modified/removed)
"""

from __future__ import annotations

from typing import Any

from dockyard.tools.analyze.ci import (
    DEFAULT_RULES,
    CiReport,
    RuleResult,
    evaluate,
    load_ci_config,
    parse_bytes,
)
from dockyard.tools.analyze.core import (
    Analysis,
    LayerReport,
    WastedFile,
    analyze_image,
    analyze_layers,
    summarize,
)

__all__ = ["DEFAULT_RULES", "Analysis", "CiReport", "LayerReport", "RuleResult", "WastedFile",
           "analyze_image", "analyze_layers", "evaluate", "load_ci_config", "parse_bytes", "summarize",
           "to_json"]


def to_json(analysis: Analysis) -> dict[str, Any]:
    """dive's ``--json`` document: ``layer`` list and ``image`` summary with ``fileReference``."""
    pct = analysis.user_wasted_percent
    return {
        "layer": [{"index": r.index, "digestId": r.diff_id, "sizeBytes": r.size, "command": r.command,
                   "added": r.added, "modified": r.modified, "removed": r.removed} for r in analysis.layers],
        "image": {
            "id": analysis.image_id,
            "sizeBytes": analysis.size,
            "inefficientBytes": analysis.wasted,
            "efficiencyScore": analysis.efficiency,
            "userWastedPercent": pct if pct != float("inf") else None,
            "fileReference": [{"count": w.count, "sizeBytes": w.size, "file": w.path}
                              for w in analysis.wasted_files],
        },
    }
