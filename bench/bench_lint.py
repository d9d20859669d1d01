"""Lint a 1,000-line Dockerfile with dockyard and with the hadolint binary; print both times and the ratio."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> None:
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
