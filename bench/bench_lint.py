"""Lint with dockyard and with the hadolint binary; print both times and the ratio.

Two measures: one 1,000-line Dockerfile through the library (DL rules and advice only), and 100
real-world-shaped Dockerfiles (the lint test corpus, repeated) in one command-line call of each
tool, ShellCheck included on both sides (hadolint links it in; dockyard runs the binary once).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.dockerfile import parse
from dockyard.tools.lint import lint

HADOLINT = Path("/var/tmp/dockyard-peers/venv/bin/hadolint")
BLOCK = [
    "FROM debian:12 AS stage{n}",
    "ARG VERSION=1.{n}",
    "ENV APP_HOME=/srv/app{n} PATH=/srv/bin:$PATH",
    "RUN apt-get update && apt-get install -y --no-install-recommends curl git \\",
    "    && rm -rf /var/lib/apt/lists/*",
    "WORKDIR /srv",
    "COPY requirements.txt ./",
    "RUN pip install --no-cache-dir -r requirements.txt && pip install flask",
    "RUN wget -q https://example.com/a{n}.tar.gz | tar -xz -C /opt",
    "COPY . .",
    "RUN cd /srv && npm install express && yarn install",
    "LABEL org.example.version=\"1.{n}\"",
    "EXPOSE 80{n:02d}",
    "USER 1000",
    "HEALTHCHECK CMD curl -f http://localhost/ || exit 1",
    "CMD [\"python\", \"app.py\"]",
    "RUN echo done {n}",
    "RUN echo again {n}",
    "",
    "",
]


def dockerfile(lines: int = 1000) -> str:
    """A realistic multi-stage Dockerfile of exactly ``lines`` lines."""
    out: list[str] = []
    n = 0
    while len(out) < lines:
        out.extend(line.format(n=n % 100) for line in BLOCK)
        n += 1
    return "\n".join(out[:lines]) + "\n"


CORPUS = Path(__file__).resolve().parents[1] / "tests" / "tools" / "lint" / "dockerfiles"


def _best_of(runs: int, argv: list[str]) -> tuple[float, float, str]:
    """The best wall time, the best CPU time (user + system, the command and its children) and output."""
    best, best_cpu, out = float("inf"), float("inf"), ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best_cpu = min(best_cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out = proc.stdout
    return best, best_cpu, out


def _distinct(text: str, copy: int) -> str:
    """``text`` with a shell comment naming the copy after each shell-form RUN: no two scripts alike
    (dockyard checks a script shared by several files once), the same findings."""
    lines = text.splitlines()
    for node in parse(text).children:
        if node.value.upper() == "RUN" and not node.is_json and not node.heredocs:
            lines[node.end_line - 1] += f"  # copy {copy}"
    return "\n".join(lines) + "\n"


def many_files(count: int = 100, runs: int = 3, distinct: bool = True) -> None:
    """``dockyard lint`` and ``hadolint`` over ``count`` Dockerfiles in one call each: the corpus
    repeated, its RUN scripts made distinct per copy unless ``distinct`` is False."""
    samples = sorted(CORPUS.glob("*.Dockerfile"))
    how = "every RUN distinct" if distinct else "repeated"
    print(f"{count} Dockerfiles ({len(samples)} samples, {how}); load average {os.getloadavg()[0]:.1f}:")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(count):
            path = Path(tmp) / f"{i:03d}-{samples[i % len(samples)].name}"
            text = samples[i % len(samples)].read_text()
            path.write_text(_distinct(text, i) if distinct else text)
            paths.append(str(path))
        argv = [sys.executable, "-m", "dockyard", "lint", "--no-fail", "--no-advice", "--format", "json"]
        ours_s, ours_cpu, ours = _best_of(runs, [*argv, *paths])
        sc = ours.count('"code":"SC')
        print(f"dockyard lint, {count} files in one call: {ours_s * 1000:.0f} ms wall, "
              f"{ours_cpu * 1000:.0f} ms CPU ({sc} SC findings)")
        if not HADOLINT.exists():
            print("hadolint not installed; no comparison", file=sys.stderr)
            return
        theirs_s, theirs_cpu, theirs = _best_of(runs, [str(HADOLINT), "--no-fail", "-f", "json", *paths])
        sc = theirs.count('"code":"SC')
        print(f"hadolint,      {count} files in one call: {theirs_s * 1000:.0f} ms wall, "
              f"{theirs_cpu * 1000:.0f} ms CPU ({sc} SC findings)")
        print(f"ratio dockyard/hadolint: {ours_s / theirs_s:.2f} wall, {ours_cpu / theirs_cpu:.2f} CPU")


def main() -> None:
    many_files()
    many_files(distinct=False)
    text = dockerfile()
    lint(text)  # warm up imports and caches
    runs = 5
    start = time.perf_counter()
    for _ in range(runs):
        ours = lint(text)
    dockyard_s = (time.perf_counter() - start) / runs
    print(f"dockyard lint: {dockyard_s * 1000:.1f} ms for {text.count(chr(10))} lines, {len(ours)} findings")
    if not HADOLINT.exists():
        print("hadolint not installed; no comparison", file=sys.stderr)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as fh:
        fh.write(text)
        fh.flush()
        start = time.perf_counter()
        for _ in range(runs):
            subprocess.run([str(HADOLINT), "--no-fail", fh.name], capture_output=True, check=True)
        hadolint_s = (time.perf_counter() - start) / runs
    print(f"hadolint:      {hadolint_s * 1000:.1f} ms")
    print(f"ratio dockyard/hadolint: {dockyard_s / hadolint_s:.2f}")


if __name__ == "__main__":
    main()
