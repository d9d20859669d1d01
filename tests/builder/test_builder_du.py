"""``dockyard builder du``: build cache records with their size and last use, as ``docker buildx du``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dockyard.builder.prune import cache_usage
from dockyard.record import replace
from tests.builder.conftest import Builds


@pytest.mark.slow
def test_du_lists_records_with_size_and_last_use(builds: Builds) -> None:
    ctx = builds.context("FROM busybox:local\nRUN head -c 300000 /dev/zero > /big\nENV A=1\n")
    builds.build(ctx)
    rows = cache_usage(builds.client.store)
    big = [r for r in rows if "head -c 300000" in r.description]
    assert len(big) == 1 and big[0].size > 300000 and big[0].last_used > 0
    assert any(r.description.startswith("ENV A=1") and r.size == 0 for r in rows)
    env = {**os.environ, "DOCKYARD_ROOT": str(builds.client.root)}
    done = subprocess.run([sys.executable, "-m", "dockyard", "builder", "du", "--verbose"], env=env,
                          check=True, capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED", "DESCRIPTION"]
    row = next(line for line in lines if "head -c 300000" in line)
    assert row.startswith(big[0].id[:25]) and " true " in row and "ago" in row
    assert lines[-1].startswith("Total:") and lines[-2].startswith("Reclaimable:")


def test_a_cached_build_marks_the_records_it_used(builds: Builds) -> None:
    """A cache hit moves the record's last use (what prune --filter until= and du's LAST ACCESSED read),
    written once when the build ends."""
    ctx = builds.context("FROM busybox:local\nRUN echo one > /one\nENV A=1\n")
    builds.build(ctx)
    meta = builds.client.store.meta
    made = {r.key: r.last_used for r in meta.cache_records()}
    for rec in meta.cache_records():  # as if last used an hour ago
        meta.put_cache(replace(rec, last_used=made[rec.key] - 3600))
    assert all(r.last_used < made[r.key] for r in meta.cache_records())
    builds.build(ctx)
    after = {r.key: r.last_used for r in meta.cache_records()}
    assert after.keys() == made.keys() and all(after[k] >= made[k] for k in made), (made, after)
