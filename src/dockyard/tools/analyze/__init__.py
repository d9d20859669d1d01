"""``analyze``: per-layer sizes and changes, wasted bytes and efficiency as dive computes them.

    analysis = analyze_image(client, "app:1")   # Analysis(layers, size, wasted, efficiency, wasted_files)
    report = evaluate(analysis, {"lowestEfficiency": "0.95"})   # dive's .dive-ci rules; report.passed
    to_json(analysis)                            # dive's JSON export layout (+ added/modified/removed)
    analysis.waste                               # WasteReport: removable bytes, each counted once, blamed
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
from dockyard.tools.analyze.waste import LayerWaste, Waste, WasteReport, blame_lines, layer_lines

__all__ = [
    "DEFAULT_RULES",
    "Analysis",
    "CiReport",
    "LayerReport",
    "LayerWaste",
    "RuleResult",
    "Waste",
    "WasteReport",
    "WastedFile",
    "analyze_image",
    "analyze_layers",
    "blame_lines",
    "evaluate",
    "layer_lines",
    "load_ci_config",
    "parse_bytes",
    "summarize",
    "to_json",
]


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
        **({"removable": _waste_json(analysis.waste)} if analysis.waste is not None else {}),
    }


def _waste_json(waste: WasteReport) -> dict[str, Any]:
    return {
        "sizeBytes": waste.total,
        "layers": [{"index": lw.index, "command": lw.command, "sizeBytes": lw.removable, "files": lw.files,
                    "byKind": lw.by_kind, "fix": lw.fix, "dockerfileLine": lw.line} for lw in waste.layers],
        "files": [{"path": w.path, "kind": w.kind, "sizeBytes": w.size, "layer": w.layer,
                   "lowerLayer": w.lower} for w in waste.items],
    }
