"""Store hygiene around builds: no dangling short links (``<store>/l``) or leftover directories after
builds, prunes and kills; ``check`` reports them and both prunes remove them."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.builder.prune import prune_cache
from dockyard.imageops.check import check
from dockyard.imageops.gc import dangling_links, leftover_tmp
from tests.builder.conftest import Builds

DOCKERFILE = """\
FROM busybox:local
WORKDIR /app
COPY a.txt ./
RUN echo one > one
RUN echo two > two
COPY b.txt ./
RUN cat a.txt b.txt one two > all
"""


def links(root: Path) -> list[Path]:
    d = root / "l"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_builds_and_prunes_leave_no_dangling_links(builds: Builds) -> None:
    store = builds.client.store
    ctx = builds.context(DOCKERFILE, {"a.txt": "A", "b.txt": "B"})
    builds.build(ctx, tags=["hygiene:1"])
    assert links(store.root), "the build mounted no overlay: the test would prove nothing"
    assert dangling_links(store) == [], [f"{p} -> {os.readlink(p)}" for p in dangling_links(store)]
    assert leftover_tmp(store) == [] and not any(store.tmp_dir.iterdir())
    (ctx / "b.txt").write_text("B2")  # a partly cached rebuild
    builds.build(ctx, tags=["hygiene:1"])
    assert dangling_links(store) == []
    report = check(store)
    assert not [n for n in report.notes if "dangling" in n or "leftover" in n], report.notes
    # The image goes, its snapshots with it (as before every cold build of a bench): the links to
    # them must go too.
    builds.client.remove("hygiene:1")
    prune_cache(store, all=True)
    assert dangling_links(store) == []
    assert all(os.path.exists(p) for p in links(store.root))


def test_check_reports_and_prunes_remove_what_a_killed_build_left(builds: Builds) -> None:
    store = builds.client.store
    builds.build(builds.context(DOCKERFILE, {"a.txt": "A", "b.txt": "B"}), tags=["hygiene:2"])
    kept = links(store.root)
    # A killed build's scratch directory (its pid is gone), a link into it, and a link to a snapshot
    # removed since (what stores made before GC swept links hold by the hundred).
    dead = store.tmp_dir / "build.999999999.0a0b0c"
    (dead / "mnt1-abc").mkdir(parents=True)
    into_dead = store.links_dir / "deadbeef00000000dead"
    os.symlink(dead / "mnt1-abc", into_dead)
    gone = store.links_dir / "deadbeef00000000gone"
    os.symlink(store.root / "snapshots" / "sha256" / ("0" * 64) / "fs", gone)

    notes = check(store).notes
    assert any(f"leftover temporary directory {dead}" in n for n in notes), notes
    assert any(f"dangling link {gone}" in n for n in notes), notes
    assert check(store).ok  # garbage, not damage: exit code 0

    builds.client.system_prune()
    assert not dead.exists() and not into_dead.is_symlink() and not gone.is_symlink()
    assert links(store.root) == kept, "links that resolve stay"
    os.symlink(store.root / "nowhere", gone)
    prune_cache(store)
    assert not gone.is_symlink()
    assert not [n for n in check(store).notes if "dangling" in n or "leftover" in n]
