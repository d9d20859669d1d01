"""Docker's masked and read-only kernel paths, read and written from inside a container (both backends),
and compared with ``docker run`` where the engine is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.executor import ProcessSpec, RootfsSpec
from dockyard.executor.base import Executor
from tests.executor.conftest import BUSYBOX_TAR
from tests.executor.probes import docker, docker_image, require_docker

# moby daemon/pkg/oci/defaults.go (2025): masked, then read-only.
DOCKER_MASKED = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                 "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                 "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
DOCKER_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Masked since Docker 28 (GHSA-6fw5-f8r9-fgfm): the 20.10 peer still shows it.
NEWER_THAN_PEER = ("/proc/interrupts",)

# One line per path. Masked: what is left to read (a directory's entries, a file's first byte; never
# more: an unmasked /proc/kcore is the size of the address space). Read-only: setting the times (utimensat
# asks the mount for write access before anything else), which would change nothing that matters if the
# mount were writable; writing a byte to /proc/sysrq-trigger would act on the host.
SCRIPT = r"""
for p in {masked}; do
  if [ ! -e "$p" ]; then echo "$p absent"
  elif [ -d "$p" ]; then echo "$p entries:$(ls -A "$p" 2>/dev/null | wc -l)"
  else echo "$p bytes:$(head -c 1 "$p" 2>/dev/null | wc -c)"; fi
done
for p in {readonly}; do
  if [ ! -e "$p" ]; then echo "$p absent"; continue; fi
  if err=$(touch -c "$p" 2>&1); then echo "$p writable"
  else case "$err" in *"Read-only file system"*) echo "$p erofs";; *) echo "$p refused";; esac; fi
done
""".format(masked=" ".join(DOCKER_MASKED), readonly=" ".join(DOCKER_READONLY))


def results(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if line.startswith("/"))


def inside(ex: Executor, rootfs: RootfsSpec) -> dict[str, str]:
    out: list[bytes] = []
    code = ex.run(ProcessSpec(args=["/bin/sh", "-c", SCRIPT]), rootfs, stdout=out.append, timeout=60)
    assert code == 0
    return results(b"".join(out).decode())


def test_masked_paths_are_empty_and_readonly_paths_refuse_writes(executor: Executor,
                                                                  overlay: RootfsSpec) -> None:
    seen = inside(executor, overlay)
    assert set(seen) == {*DOCKER_MASKED, *DOCKER_READONLY}
    for path in DOCKER_MASKED:
        assert seen[path] in ("absent", "entries:0", "bytes:0"), (path, seen[path])
    for path in DOCKER_READONLY:
        assert seen[path] in ("absent", "erofs"), (path, seen[path])
    # present on this machine's kernel, so the masks are really exercised
    assert seen["/proc/sys"] == seen["/proc/irq"] == seen["/proc/fs"] == "erofs"
    exercised = [p for p in DOCKER_MASKED if Path(p).exists()]
    assert {"/proc/interrupts", "/proc/keys", "/sys/firmware"} <= set(exercised)
    assert all(seen[p] != "absent" for p in exercised), seen


@pytest.mark.docker
def test_kernel_paths_match_docker_run(ns_executor: Executor, overlay: RootfsSpec) -> None:
    require_docker()
    tag = docker_image(Path(BUSYBOX_TAR).read_bytes(), "busybox")
    result = docker("run", "--rm", "--network=none", tag, "/bin/sh", "-c", SCRIPT)
    assert result.returncode == 0, result.stderr.decode()
    theirs = results(result.stdout.decode())
    ours = inside(ns_executor, overlay)
    for path in NEWER_THAN_PEER:
        assert ours[path] in ("absent", "bytes:0") and theirs.pop(path) in ("absent", "bytes:1")
        del ours[path]
    assert ours == theirs
