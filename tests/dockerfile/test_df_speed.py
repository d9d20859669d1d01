"""The speed goal of issue 3, held in CI: a 1,000-line Dockerfile parses, types and expands in < 20 ms."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_dockerfile.py"


def test_thousand_lines_under_20ms_cpu() -> None:
    spec = importlib.util.spec_from_file_location("bench_dockerfile", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    text = bench.make_dockerfile()
    assert text.count("\n") == 1000
    assert bench.parse_and_expand(text) > 500
    # Best CPU time of a few runs: other jobs on this 2-core machine inflate wall time, not this.
    best = min(_cpu(bench.parse_and_expand, text) for _ in range(25))
    assert best < 0.020, f"{best * 1000:.1f} ms"


def _cpu(fn: object, text: str) -> float:
    assert callable(fn)
    start = time.process_time()
    fn(text)
    return time.process_time() - start
