"""The listing's copy (``imageops.list_cache``): ``images`` read without SQLite, and never stale.

A copy is made only from a read of a settled database (files untouched for a second); the tests
that need one lower that second to zero, or wait it out where a subprocess must find the copy.
"""

from __future__ import annotations

import io
import marshal
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.imageops import list_cache
from dockyard.imageops.gc import clean_tmp
from dockyard.imageops.images import list_images
from dockyard.oci.config import ImageConfig


def rows(listed: object) -> list[tuple[str, list[str], list[str], float, int]]:
    return [(str(i.id), list(i.repo_tags), list(i.repo_digests), i.created, i.size)  # type: ignore[attr-defined]
            for i in listed]  # type: ignore[attr-defined]


def layer_tar(name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(name)
        tf.addfile(info, io.BytesIO(name.encode()))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with a tagged child, its untagged parent (hidden without ``-a``) and a dangling image."""
    root = tmp_path / "store"
    with Client(root, fsync=False) as client:
        a = client.store_layer(layer_tar("a")).diff_id
        b = client.store_layer(layer_tar("b")).diff_id
        parent = client.commit_image(ImageConfig(created="2024-01-01T00:00:00Z", diff_ids=[a]))
        client.commit_image(ImageConfig(created="2024-01-02T00:00:00Z", diff_ids=[a, b]),
                            names=["app:1", "localhost:5000/team/app:1"], parent=str(parent.id))
        client.commit_image(ImageConfig(created="2024-01-03T00:00:00Z", diff_ids=[b]))
    return root


def from_database(root: Path, all: bool) -> list[tuple[str, list[str], list[str], float, int]]:
    with Client(root) as client:
        return rows(list_images(client.store, all=all))


@pytest.fixture
def settle_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_cache, "_SETTLED_NS", 0)


def test_a_copy_lists_what_the_database_lists_both_ways(store: Path, settle_now: None) -> None:
    for every in (False, True):
        assert rows(list_cache.list_images(str(store), every)) == from_database(store, every)
    assert (store / list_cache.CACHE_FILE).exists()
    for every in (False, True):
        listed = list_cache.list_images(str(store), every)
        assert all(isinstance(i, list_cache.Listed) for i in listed), "the copy was not read"
        assert rows(listed) == from_database(store, every)
    assert len(from_database(store, True)) == len(from_database(store, False)) + 1  # the parent


def test_every_write_after_the_copy_is_seen(store: Path, settle_now: None) -> None:
    list_cache.list_images(str(store))
    assert (store / list_cache.CACHE_FILE).exists()
    with Client(store) as client:
        client.tag("app:1", "app:2")
    listed = list_cache.list_images(str(store))
    assert ["app:1", "app:2", "localhost:5000/team/app:1"] in [i.repo_tags for i in listed]
    assert rows(listed) == from_database(store, False)
    with Client(store) as client:
        for name in ("app:1", "app:2", "localhost:5000/team/app:1"):
            client.remove(name)
    assert rows(list_cache.list_images(str(store))) == from_database(store, False)
    assert all(not i.repo_tags for i in list_cache.list_images(str(store), True))


def test_no_copy_of_a_database_written_within_the_last_second(store: Path) -> None:
    # A write later in the same clock tick could leave the files looking as they were.
    list_cache.list_images(str(store))
    assert not (store / list_cache.CACHE_FILE).exists()


def test_no_copy_of_a_read_that_a_write_overlapped(store: Path, settle_now: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.imageops import images

    real = images.listing

    def listing_then_a_tag(s: object) -> object:
        found = real(s)  # type: ignore[arg-type]
        with Client(store) as client:
            client.tag("app:1", "app:late")
        return found

    monkeypatch.setattr(images, "listing", listing_then_a_tag)
    list_cache.list_images(str(store))
    assert not (store / list_cache.CACHE_FILE).exists()
    monkeypatch.setattr(images, "listing", real)
    assert "app:late" in [t for i in list_cache.list_images(str(store)) for t in i.repo_tags]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-owner", "database-removed"])
def test_a_damaged_or_foreign_copy_is_never_read(store: Path, settle_now: None, damage: str) -> None:
    list_cache.list_images(str(store))
    copy = store / list_cache.CACHE_FILE
    data = copy.read_bytes()
    if damage == "garbage":
        copy.write_bytes(b"\x00not marshal data" * 10)
    elif damage == "truncated":
        copy.write_bytes(data[: len(data) // 2])
    elif damage == "other-owner":  # a copy that matches the database, planted by somebody else
        form, signature, _ = marshal.loads(data)
        planted = [("sha256:" + "e" * 64, ["evil:1"], [], 1.0, 1, False)]
        copy.write_bytes(marshal.dumps((form, signature, planted)))
        os.chown(copy, 12345, 12345)
    else:
        (store / "metadata.db").unlink()
    expected = from_database(store, False)  # (a removed database is made again, empty)
    assert rows(list_cache.list_images(str(store))) == expected
    if damage == "database-removed":
        assert expected == []


def test_a_killed_writers_scratch_file_is_collected(store: Path) -> None:
    (store / "tmp").mkdir(exist_ok=True)
    leftover = store / "tmp" / "image-list.999999999.abcdef"
    leftover.write_bytes(b"partial")
    with Client(store) as client:
        assert clean_tmp(client.store) == 1
    assert not leftover.exists()


def test_the_command_lists_from_the_copy_without_sqlite(store: Path) -> None:
    """``dockyard images`` on a settled store: the first run makes the copy, the next reads it (no
    sqlite3, no metadata layer) and prints what click's command prints from the database."""
    time.sleep(1.1)

    def run(*args: str, click_only: bool = False) -> subprocess.CompletedProcess[str]:
        code = ("import sys; from dockyard.cli.group import run; run(sys.argv[1:], debug=False)"
                if click_only else
                "import sys; from dockyard.cli.main import main; sys.argv[0] = 'dockyard'; sys.exit(main())")
        return subprocess.run([sys.executable, "-X", "importtime", "-c", code, "--root", str(store), *args],
                              capture_output=True, text=True, timeout=60)

    first = run("images")
    assert first.returncode == 0 and (store / list_cache.CACHE_FILE).exists(), first.stderr[-2000:]
    for args in (["images"], ["images", "-a"], ["images", "--digests", "--no-trunc"], ["images", "-q"]):
        fast = run(*args)
        assert fast.returncode == 0, fast.stderr[-2000:]
        names = {line.rsplit("|", 1)[1].strip() for line in fast.stderr.splitlines()
                 if line.startswith("import time:") and "|" in line}
        assert "dockyard.imageops.list_cache" in names, "importtime output not understood"
        assert not {"sqlite3", "dockyard.metadata", "datetime"} & names, names
        assert fast.stdout == run(*args, click_only=True).stdout
    assert "app:1" not in run("images").stdout  # the table splits names into columns
    assert "app " in run("images").stdout.replace("  ", " ")
