"""Dockerfile front end speed: parse + type + expand a 1,000-line Dockerfile; match 100,000 ignore paths.

Goals (issue 3): a 1,000-line Dockerfile in under 20 ms; 100,000 .dockerignore paths in under 1 s.
No peer exists for this (BuildKit's parser is in-process Go), so only our numbers and the goals print.
Run: .venv/bin/python bench/bench_dockerfile.py
"""

from __future__ import annotations

import statistics
import time

from dockyard.dockerfile import PatternMatcher, parse, parse_stages, read_ignore_file


def make_dockerfile(lines: int = 1000) -> str:
    """A realistic mix: global ARGs, stages, RUN chains with continuations, ENV, COPY, LABEL, heredocs."""
    out = ["# syntax=docker/dockerfile:1", "ARG BASE=debian:bookworm-slim", "ARG VERSION=1.2.3",
           "FROM ${BASE} AS build", "ARG VERSION", "ARG TARGETARCH"]
    i = 0
    tail = ["FROM build AS final", "USER app", "EXPOSE 8080/tcp 9000-9001/udp",
            'HEALTHCHECK --interval=30s --timeout=3s CMD ["curl", "-f", "http://localhost/"]',
            'ENTRYPOINT ["/opt/app/bin/run"]', 'CMD ["--serve"]']
    while len(out) + 12 + len(tail) <= lines:
        i += 1
        out += [
            f"ENV APP_HOME=/opt/app{i} PATH=/opt/app{i}/bin:$PATH LANG=C.UTF-8",
            f'LABEL org.opencontainers.image.version="${{VERSION}}" step="{i}"',
            "RUN set -eux; \\",
            "    apt-get update; \\",
            f"    apt-get install -y --no-install-recommends ca-certificates curl pkg{i}; \\",
            "    rm -rf /var/lib/apt/lists/*",
            f"COPY --chown=app:app --chmod=755 src/{i}/ ${{APP_HOME}}/src/",
            f"WORKDIR ${{APP_HOME:-/srv}}/w{i}",
            f"RUN --mount=type=cache,target=/root/.cache/{i} ./build.sh --arch=$TARGETARCH",
            "RUN <<EOF",
            f"echo step {i}",
            "EOF",
        ]
    out += ["RUN true"] * (lines - len(out) - len(tail)) + tail
    return "\n".join(out) + "\n"


def parse_and_expand(text: str) -> int:
    plan = parse_stages(parse(text), {"VERSION": "2.0"})
    n = 0
    for stage in plan.stages:
        env = plan.stage_env(stage, ["PATH=/usr/local/bin:/usr/bin:/bin"])
        for instr in stage.instructions:
            env.apply(instr)
            n += 1
    return n


def bench_dockerfile(repeat: int = 30) -> tuple[float, float, float]:
    """(best CPU, median CPU, median wall) milliseconds.

    The best of several runs is the figure to judge (as ``timeit`` advises): this VM's CPU speed
    drifts by up to 2x between runs of identical code, which the median also shows."""
    text = make_dockerfile()
    assert text.count("\n") == 1000
    parse_and_expand(text)  # warm up
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        parse_and_expand(text)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(cpu) * 1000, statistics.median(cpu) * 1000, statistics.median(wall) * 1000


def bench_dockerignore() -> tuple[float, float]:
    patterns = read_ignore_file("node_modules\n**/*.pyc\n.git\n*.log\nbuild/**\n!build/keep\n"
                                "docs/*.md\n**/__pycache__\ntmp?\n[a-c]*.bak\n")
    exts = ("py", "pyc", "log", "txt")
    paths = [f"src/pkg{i % 50}/mod{i % 7}/file{i}.{exts[i % 4]}" for i in range(100_000)]
    t0, c0 = time.perf_counter(), time.process_time()
    pm = PatternMatcher(patterns)
    for p in paths:
        pm.matches(p)
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def main() -> None:
    best, median_cpu, median_wall = bench_dockerfile()
    verdict = "met" if best < 20 else "MISSED"
    print(f"parse+type+expand 1,000-line Dockerfile: best {best:.1f} ms CPU of 30 "
          f"(median {median_cpu:.1f} ms CPU, {median_wall:.1f} ms wall)   goal < 20 ms: {verdict}")
    wall, cpu = bench_dockerignore()
    print(f".dockerignore, 10 patterns x 100,000 paths: {wall:.0f} ms wall, {cpu:.0f} ms CPU   "
          "goal < 1000 ms")


if __name__ == "__main__":
    main()
