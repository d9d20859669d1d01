"""The built-in executor with fuse-overlayfs (``fuse=True``, chosen where the kernel's overlayfs is
refused): the run sees its rootfs through fuse-overlayfs, and its upper directory ends in overlayfs's
form, with no mount point stubs, so a commit of it is what the kernel's overlay would have left."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.executor import NamespaceExecutor, ProcessSpec, RootfsSpec

pytestmark = pytest.mark.fuse_overlayfs


@pytest.fixture(scope="module")
def fuse_executor(state_dir: Path) -> Iterator[NamespaceExecutor]:
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("fuse-overlayfs mounts need /dev/fuse")
    with NamespaceExecutor(state_dir, fuse=True) as ex:
        yield ex


def _tree(upper: Path) -> dict[str, tuple[str, list[str]]]:
    """Each entry of ``upper``: its kind (``dir``, ``file``, ``whiteout``) and its xattrs."""
    out = {}
    for parent, dirs, files in os.walk(upper):
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            kind = ("dir" if stat.S_ISDIR(st.st_mode) else
                    "whiteout" if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else "file")
            out[os.path.relpath(path, upper)] = (kind, sorted(os.listxattr(path, follow_symlinks=False)))
    return out


def test_run_on_fuse_overlayfs_leaves_an_overlayfs_upper(fuse_executor: NamespaceExecutor,
                                                         overlay: RootfsSpec) -> None:
    out: list[bytes] = []
    script = ("awk '$5 == \"/\" {for (i = 7; i < NF; i++) if ($i == \"-\") print $(i + 1)}' "
              "/proc/self/mountinfo; mkdir /new && touch /new/f && rm /bin/vi && echo x >> /etc/passwd"
              " && rm -rf /home && mkdir /home && touch /home/g")
    code = fuse_executor.run(ProcessSpec(args=["/bin/sh", "-c", script], network="none"), overlay,
                             stdout=out.append, timeout=60)
    assert code == 0
    assert b"".join(out) == b"fuse.fuse-overlayfs\n"
    assert _tree(overlay.upperdir) == {
        "new": ("dir", []), "new/f": ("file", []),
        "bin": ("dir", []), "bin/vi": ("whiteout", []),
        "etc": ("dir", []), "etc/passwd": ("file", []),
        "home": ("dir", ["trusted.overlay.opaque"]), "home/g": ("file", []),
    }
