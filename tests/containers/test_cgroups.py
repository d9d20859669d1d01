"""cgroup v2 files written and read, on a fake unified tree (this machine runs cgroup v1, which the
container tests exercise for real): the limits as runc sets them for Docker, what ``stats`` reads,
``pause`` and the OOM flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.containers import cgroups
from dockyard.errors import ExecutionError

CID = "c0ffee"


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_limits_are_written_as_runc_does_for_docker(v2: Path) -> None:
    limits = cgroups.Limits(memory=64 << 20, memory_swap=128 << 20, nano_cpus=1_500_000_000, cpu_shares=512,
                            pids_limit=10)
    made = cgroups.prepare(CID, limits, root=v2)
    d = v2 / "dockyard" / CID
    assert made == [str(d)]
    # The controllers a container uses are handed down to dockyard/ and to each container's cgroup.
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert (v2 / "dockyard" / "cgroup.subtree_control").read_text() == "+cpu +io +memory +pids"
    assert {p.name: p.read_text() for p in d.iterdir()} == {
        "memory.max": str(64 << 20),
        "memory.swap.max": str(64 << 20),  # v2 counts swap alone: --memory-swap minus --memory
        "cpu.max": "150000 100000",
        "cpu.weight": "20",  # shares 512 -> weight 1 + (510 * 9999) // 262142
        "pids.max": "10"}
    assert cgroups.existing(CID, root=v2) == [str(d)]


def test_v2_unlimited_swap_and_pids(v2: Path) -> None:
    cgroups.prepare(CID, cgroups.Limits(memory=8 << 20, memory_swap=-1, pids_limit=-1), root=v2)
    d = v2 / "dockyard" / CID
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "pids.max").read_text() == "max"
    assert not (d / "cpu.max").exists() and not (d / "cpu.weight").exists()


def test_v2_usage_as_docker_stats_reports_it(v2: Path) -> None:
    d = v2 / "dockyard" / CID
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.current").write_text("10000000\n")
    (d / "memory.stat").write_text("anon 8000000\nfile 2000000\ninactive_file 1000000\n")
    (d / "memory.max").write_text("max\n")
    (d / "pids.current").write_text("3\n")
    (d / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                               "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n")
    (d / "cgroup.procs").write_text("41\n42\n43\n")
    use = cgroups.usage(CID, root=v2)
    assert (use.cpu_ns, use.memory, use.pids, use.block_read, use.block_write) == (
        1_500_000, 9_000_000, 3, 4097, 8194)
    assert use.memory_limit == cgroups.host_memory()  # "max": the host's memory, as Docker shows
    (d / "memory.max").write_text(f"{32 << 20}\n")
    assert cgroups.usage(CID, root=v2).memory_limit == 32 << 20
    assert cgroups.pids(CID, root=v2) == [41, 42, 43]


def test_v2_pause_and_oom(v2: Path) -> None:
    with pytest.raises(ExecutionError, match="it has no cgroup of its own"):
        cgroups.freeze(CID, True, root=v2)
    d = v2 / "dockyard" / CID
    d.mkdir(parents=True)
    cgroups.freeze(CID, True, root=v2)
    assert (d / "cgroup.freeze").read_text() == "1"
    cgroups.freeze(CID, False, root=v2)
    assert (d / "cgroup.freeze").read_text() == "0"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    assert not cgroups.oom_killed(CID, root=v2)
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert cgroups.oom_killed(CID, root=v2)
