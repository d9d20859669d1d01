"""Each running container in its own cgroup (``dockyard/<id>``): accounting for ``stats`` and ``top``.

cgroup v1 (one hierarchy per controller under /sys/fs/cgroup) and v2 (one unified hierarchy) are both
read. The container's first process joins them before it execs (``ProcessSpec.cgroups``); what it starts
follows by inheritance.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from dockyard.errors import ExecutionError
from dockyard.record import record

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio", "freezer")


def is_v2(root: Path = CGROUP_ROOT) -> bool:
    return (root / "cgroup.controllers").exists()


def _dirs(cid: str, root: Path = CGROUP_ROOT) -> dict[str, Path]:
    if is_v2(root):
        return {"unified": root / "dockyard" / cid}
    return {c: root / c / "dockyard" / cid for c in V1_CONTROLLERS if (root / c).is_dir()}


@record(slots=True)
class Limits:
    """Docker's HostConfig limits: bytes (0 none; ``memory_swap`` -1 unlimited), CPU in nano-CPUs."""

    memory: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    pids_limit: int = 0

    @classmethod
    def of(cls, host_config: dict[str, Any]) -> Limits:
        return cls(int(host_config.get("Memory") or 0), int(host_config.get("MemorySwap") or 0),
                   int(host_config.get("NanoCpus") or 0), int(host_config.get("CpuShares") or 0),
                   int(host_config.get("PidsLimit") or 0))


def _v1_limits(dirs: dict[str, Path], limits: Limits) -> dict[Path, str]:
    out: dict[Path, str] = {}
    if limits.memory and "memory" in dirs:
        out[dirs["memory"] / "memory.limit_in_bytes"] = str(limits.memory)
        if limits.memory_swap:  # memory + swap; -1 unlimited
            out[dirs["memory"] / "memory.memsw.limit_in_bytes"] = str(limits.memory_swap)
    if limits.nano_cpus and "cpu" in dirs:
        out[dirs["cpu"] / "cpu.cfs_period_us"] = "100000"
        out[dirs["cpu"] / "cpu.cfs_quota_us"] = str(limits.nano_cpus * 100000 // 1_000_000_000)
    if limits.cpu_shares and "cpu" in dirs:
        out[dirs["cpu"] / "cpu.shares"] = str(limits.cpu_shares)
    if limits.pids_limit and "pids" in dirs:
        out[dirs["pids"] / "pids.max"] = "max" if limits.pids_limit < 0 else str(limits.pids_limit)
    return out


def _v2_limits(d: Path, limits: Limits) -> dict[Path, str]:
    out: dict[Path, str] = {}
    if limits.memory:
        out[d / "memory.max"] = str(limits.memory)
        if limits.memory_swap:
            out[d / "memory.swap.max"] = ("max" if limits.memory_swap < 0
                                          else str(max(0, limits.memory_swap - limits.memory)))
    if limits.nano_cpus:
        out[d / "cpu.max"] = f"{limits.nano_cpus * 100000 // 1_000_000_000} 100000"
    if limits.cpu_shares:  # Docker's conversion of shares (2..262144) to weight (1..10000)
        out[d / "cpu.weight"] = str(1 + ((limits.cpu_shares - 2) * 9999) // 262142)
    if limits.pids_limit:
        out[d / "pids.max"] = "max" if limits.pids_limit < 0 else str(limits.pids_limit)
    return out


def freeze(cid: str, frozen: bool, root: Path = CGROUP_ROOT) -> None:
    """Freeze (``pause``) or thaw (``unpause``) every process of the container."""
    dirs = _dirs(cid, root)
    verb = "pause" if frozen else "unpause"
    if "unified" in dirs:
        path, value = dirs["unified"] / "cgroup.freeze", "1" if frozen else "0"
    elif "freezer" in dirs:
        path, value = dirs["freezer"] / "freezer.state", "FROZEN" if frozen else "THAWED"
    else:
        raise ExecutionError("no freezer cgroup on this host: pause is not available")
    if not path.parent.is_dir():  # prepare() could not make it: the process runs in no cgroup of its own
        raise ExecutionError(f"cannot {verb} the container: it has no cgroup of its own (this user cannot "
                             f"write {root}, as in rootless mode without a delegated cgroup v2 tree)")
    try:
        path.write_text(value)
    except OSError as exc:
        raise ExecutionError(f"cannot {verb} the container: {exc.strerror}") from None


def oom_killed(cid: str, root: Path = CGROUP_ROOT) -> bool:
    """Whether the kernel's OOM killer killed a process of the container (read before :func:`remove`)."""
    dirs = _dirs(cid, root)
    if "unified" in dirs:
        return _keyed(_read(dirs["unified"] / "memory.events")).get("oom_kill", 0) > 0
    if "memory" in dirs:
        return _keyed(_read(dirs["memory"] / "memory.oom_control")).get("oom_kill", 0) > 0
    return False


def prepare(cid: str, limits: Limits | None = None, root: Path = CGROUP_ROOT) -> list[str]:
    """Make the container's cgroups with ``limits`` set; the directories made (none where cgroups are
    not writable: the container then runs without them and ``stats`` shows zeros). A limit that cannot
    be set raises :class:`~dockyard.errors.ExecutionError`, as the runtime does for Docker."""
    if is_v2(root):
        with contextlib.suppress(OSError):
            (root / "dockyard").mkdir(exist_ok=True)
            wanted = set((root / "cgroup.controllers").read_text().split()) & {"cpu", "memory", "pids", "io"}
            for parent in (root, root / "dockyard"):
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
    made = []
    dirs = _dirs(cid, root)
    for path in dirs.values():
        with contextlib.suppress(OSError):
            path.mkdir(parents=True, exist_ok=True)
            made.append(str(path))
    asked = limits or Limits()
    settings = _v2_limits(dirs["unified"], asked) if "unified" in dirs else _v1_limits(dirs, asked)
    for path, value in settings.items():
        try:
            path.write_text(value)
        except OSError as exc:
            raise ExecutionError(f"cannot set {path.name} to {value}: {exc.strerror}") from None
    return made


def existing(cid: str, root: Path = CGROUP_ROOT) -> list[str]:
    """The container's cgroup directories that exist now."""
    return [str(p) for p in _dirs(cid, root).values() if p.is_dir()]


def remove(cid: str, root: Path = CGROUP_ROOT) -> None:
    """Remove the container's cgroups (only empty ones can go)."""
    for path in _dirs(cid, root).values():
        with contextlib.suppress(OSError):
            path.rmdir()


def pids(cid: str, root: Path = CGROUP_ROOT) -> list[int]:
    """The host pids of every process in the container."""
    dirs = _dirs(cid, root)
    path = dirs.get("unified") or dirs.get("pids") or dirs.get("memory")
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()] if path else []
    except OSError:
        return []


@record(slots=True)
class Usage:
    """One sample of a container's use: cpu in ns, memory and block I/O in bytes."""

    cpu_ns: int = 0
    memory: int = 0
    memory_limit: int = 0
    pids: int = 0
    block_read: int = 0
    block_write: int = 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(text: str, default: int = 0) -> int:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else default


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def host_memory() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def usage(cid: str, root: Path = CGROUP_ROOT) -> Usage:
    """What the container's cgroups have counted (memory as Docker reports it: without the page cache
    that could be dropped, and the limit at most the host's memory)."""
    dirs = _dirs(cid, root)
    out = Usage()
    total = host_memory()
    if "unified" in dirs:
        d = dirs["unified"]
        out.cpu_ns = _keyed(_read(d / "cpu.stat")).get("usage_usec", 0) * 1000
        stat = _keyed(_read(d / "memory.stat"))
        out.memory = max(0, _int(_read(d / "memory.current")) - stat.get("inactive_file", 0))
        max_text = _read(d / "memory.max").strip()
        out.memory_limit = total if max_text in ("", "max") else min(int(max_text), total)
        out.pids = _int(_read(d / "pids.current"))
        for line in _read(d / "io.stat").splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            out.block_read += int(fields.get("rbytes", 0))
            out.block_write += int(fields.get("wbytes", 0))
        return out
    if "cpuacct" in dirs:
        out.cpu_ns = _int(_read(dirs["cpuacct"] / "cpuacct.usage"))
    if "memory" in dirs:
        d = dirs["memory"]
        stat = _keyed(_read(d / "memory.stat"))
        out.memory = max(0, _int(_read(d / "memory.usage_in_bytes")) - stat.get("total_inactive_file", 0))
        limit = _int(_read(d / "memory.limit_in_bytes"), total)
        out.memory_limit = min(limit, total) if total else limit
    if "pids" in dirs:
        out.pids = _int(_read(dirs["pids"] / "pids.current"))
    if "blkio" in dirs:
        for line in _read(dirs["blkio"] / "blkio.throttle.io_service_bytes").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                out.block_read += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                out.block_write += int(parts[2])
    return out


def system_cpu_ns() -> int:
    """All CPU time of the host so far (the ``cpu`` line of /proc/stat), in ns, as Docker's SystemUsage."""
    for line in _read(Path("/proc/stat")).splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(v) for v in line.split()[1:8])
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def network_io(pid: int) -> tuple[int, int]:
    """Bytes received and sent by the container's interfaces (not ``lo``), from its network namespace."""
    rx = tx = 0
    for line in _read(Path(f"/proc/{pid}/net/dev")).splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx
