"""Per-RUN overhead of the executor: ``true`` on an overlay of busybox, built-in vs ``runc run``.

Each round runs both backends once (interleaved, so machine noise hits both alike) with a fresh upper
directory; prints the median of ``--runs`` rounds in ms and the ratio. Goal (issue 4): built-in < 10 ms.
``--fat-mb N`` first grows this process by N MiB to show that forking from the zygote does not pay for
the caller's size. As a non-root user it measures rootless mode (it enters its user namespace first,
as the CLI does; goal < 15 ms). The busybox tarball comes from scripts/peers/make-busybox-rootfs.sh.

Run: .venv/bin/python bench/bench_executor.py [--runs 50] [--fat-mb 0] [--no-runc] [--unconfined]
    [--network private]

On a busy machine the medians measure the queue for a CPU; ``chrt -f 1 ... --no-runc`` shows the cost
when one is free (runc cannot run under a real-time policy: its cgroup set-up fails).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from dockyard.executor import NamespaceExecutor, ProcessSpec, RootfsSpec, RuncExecutor
from dockyard.executor.base import Executor
from dockyard.executor.rootless import enter_user_namespace

GOAL_MS = 10.0
ROOTLESS_GOAL_MS = 15.0
PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
TARBALL = PEERS_DIR / "images" / "busybox-amd64.tar"
MAKE = Path(__file__).resolve().parents[1] / "scripts" / "peers" / "make-busybox-rootfs.sh"


def one(executor: Executor, lower: Path, base: Path, i: int, seccomp: str | None = "default",
        network: str = "host") -> float:
    run = base / f"run{i}"
    (run / "upper").mkdir(parents=True)
    (run / "work").mkdir()
    rootfs = RootfsSpec([lower], run / "upper", run / "work")
    start = time.perf_counter()
    code = executor.run(ProcessSpec(args=["/bin/true"], seccomp=seccomp, network=network), rootfs)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - start) * 1000
    assert code == 0
    shutil.rmtree(run)
    return elapsed


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def zygote_cpu_s(executor: NamespaceExecutor, rootless: bool = False) -> float:
    """CPU seconds of the zygote and of the container processes it has reaped (in rootless mode the
    zygote is the child of the process started, which only waits for it)."""
    zygote = executor._zygote
    assert zygote is not None
    if not rootless:
        return _cpu_s(zygote.pid)
    with open(f"/proc/{zygote.pid}/task/{zygote.pid}/children") as f:
        return sum(_cpu_s(int(child)) for child in f.read().split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--fat-mb", type=int, default=0)
    parser.add_argument("--no-runc", action="store_true")
    parser.add_argument("--unconfined", action="store_true",
                        help="run without the default seccomp profile (to see what it costs)")
    parser.add_argument("--network", default="host", choices=["host", "none", "private"],
                        help="the runs' network (private: the namespace a build's RUN steps share)")
    args = parser.parse_args()
    rootless = os.geteuid() != 0
    if rootless:
        enter_user_namespace()
    goal = ROOTLESS_GOAL_MS if rootless else GOAL_MS
    if not TARBALL.exists():
        subprocess.run(["bash", str(MAKE), "amd64"], check=True, capture_output=True)
    fat = bytearray(args.fat_mb << 20)
    for offset in range(0, len(fat), 4096):
        fat[offset] = 1  # touch every page so it is really resident
    base = Path(tempfile.mkdtemp(prefix="bench-exec-", dir="/dev/shm"))
    try:
        lower = base / "busybox"
        lower.mkdir()
        subprocess.run(["tar", "-xf", str(TARBALL), "-C", str(lower)], check=True)
        use_runc = not args.no_runc and shutil.which("runc") is not None
        builtin = NamespaceExecutor(base / "state")
        runc = RuncExecutor(base / "state") if use_runc else None
        one(builtin, lower, base, -1, network=args.network)  # start the zygote (and pasta) outside the timing
        times: dict[str, list[float]] = {"built-in": [], "runc": []}
        cpu = 0.0
        for i in range(args.runs):
            before = (time.process_time(), zygote_cpu_s(builtin, rootless))
            profile_arg = None if args.unconfined else "default"
            times["built-in"].append(one(builtin, lower, base, i, profile_arg, args.network))
            cpu += time.process_time() - before[0] + zygote_cpu_s(builtin, rootless) - before[1]
            if runc is not None:
                times["runc"].append(one(runc, lower, base, i + args.runs, profile_arg, args.network))
        builtin.close()
        if runc is not None:
            runc.close()
        med = {name: statistics.median(ts) for name, ts in times.items() if ts}
        profile = "unconfined" if args.unconfined else "Docker's default seccomp profile"
        print(f"per-RUN overhead of `true`, median of {args.runs} ({'rootless' if rootless else 'root'}, "
              f"caller RSS +{args.fat_mb} MiB, {profile}, network {args.network}):")
        for name, value in med.items():
            q = statistics.quantiles(times[name], n=10)
            print(f"  {name:9s} {value:7.2f} ms   (p10 {q[0]:.2f}, p90 {q[-1]:.2f})")
        print(f"  built-in CPU per run (caller + zygote + container): {cpu / args.runs * 1000:.2f} ms"
              f"   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        if "runc" in med:
            print(f"  runc / built-in: {med['runc'] / med['built-in']:.1f}x")
        verdict = "meets" if med["built-in"] < goal else "MISSES"
        print(f"  goal < {goal:g} ms: built-in {verdict} it")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
