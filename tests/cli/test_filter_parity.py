"""``images --filter until=X`` and ``image prune --filter until=X`` select the same images (issue 9).

Run in Asia/Kolkata (UTC+05:30) so that a date read as UTC instead of local time picks other images.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockyard.cli.main import cli
from dockyard.client import Client
from tests.content.storekit import make_image


@pytest.fixture(autouse=True)
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _ago(seconds: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# name -> created. Local midnight of 2024-01-01 is 2023-12-31T18:30Z; "b" falls between the two midnights.
IMAGES = {
    "a": "2023-12-31T18:00:00Z", "b": "2023-12-31T20:00:00Z", "c": "2024-01-01T02:00:00Z",
    "d": "2024-01-01T06:00:00Z", "e": "now-2h", "f": "now-10m",
}

CASES = [
    ("2024-01-01", "a"),                       # local midnight, not UTC's
    ("2024-01-01T00:00:00", "a"),
    ("2024-01-01T00:00", "a"),
    ("2024-01-01T10", "abc"),                  # 04:30Z
    ("2024-01-01Z", "ab"),
    ("2024-01-01T05:00:00+05:30", "ab"),
    ("2024-01-01T03:00:00.5Z", "abc"),
    ("2024-01-01T01:30:00.250+05:30", "ab"),
    ("1704067200", "ab"),                      # unix seconds: UTC midnight
    ("1704085200.5", "abc"),
    ("3h", "abcd"),
    ("1h", "abcde"),
    ("90m", "abcde"),
    ("10us", "abcdef"),                        # refused by image prune before
    ("-1h", "abcdef"),
    ("2020-01-01", ""),
]


@pytest.mark.parametrize(("until", "expected"), CASES)
def test_images_and_image_prune_select_the_same_images(tmp_path: Path, until: str, expected: str) -> None:
    root = tmp_path / "store"
    client = Client(root, fsync=False)
    ids = {}
    try:
        for name, created in IMAGES.items():
            if created.startswith("now-"):
                created = _ago(7200 if created == "now-2h" else 600)
            ids[make_image(client, [], names=[name], created=created, extra=name).id.hex] = name
    finally:
        client.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["--root", str(root), "images", "--no-trunc", "--format", "{{.ID}}",
                                 "--filter", f"until={until}"], catch_exceptions=False).output.split()
    pruned = runner.invoke(cli, ["--root", str(root), "image", "prune", "-a", "-f",
                                 "--filter", f"until={until}"], catch_exceptions=False).output
    pruned_ids = [line.split("sha256:")[1] for line in pruned.splitlines() if line.startswith("deleted: ")]
    assert "".join(sorted(ids[i.removeprefix("sha256:")] for i in listed)) == expected
    assert "".join(sorted(ids[i] for i in pruned_ids)) == expected


def _cache(client: Client, key: str, last_used: float) -> None:
    from dockyard.metadata import CacheRecord

    client.store.meta.put_cache(CacheRecord(key, "blob", "sha256:" + "0" * 64, created=last_used,
                                            last_used=last_used))


def _keys(client: Client) -> list[str]:
    return sorted(r.key for r in client.store.meta.cache_records())


def test_builder_and_system_prune_read_the_same_filters(tmp_path: Path) -> None:
    root = tmp_path / "store"
    client = Client(root, fsync=False)
    runner = CliRunner()
    try:
        _cache(client, "old", time.time() - 2 * 86400)
        _cache(client, "new", time.time() - 60)
        bad = runner.invoke(cli, ["--root", str(root), "builder", "prune", "-f", "--filter", "label=a"])
        assert bad.exit_code != 0 and "invalid filter 'label'" in str(bad.exception)
        out = runner.invoke(cli, ["--root", str(root), "builder", "prune", "-f", "--filter", "until=24h"],
                            catch_exceptions=False).output
        assert out.startswith("Deleted build cache objects:\nold\n") and _keys(client) == ["new"]

        _cache(client, "old2", time.time() - 2 * 86400)
        make_image(client, [], names=["keep"], extra="keep")
        make_image(client, [], names=["drop"], labels={"tier": "tmp"}, extra="drop")
        out = runner.invoke(cli, ["--root", str(root), "system", "prune", "-a", "-f", "--filter", "until=24h",
                                  "--filter", "label=tier=tmp"], catch_exceptions=False).output
        assert "untagged: drop:latest" in out and "keep" not in out
        assert [i.repo_tags for i in client.images()] == [["keep:latest"]]
        assert _keys(client) == ["new"]  # until= applies to the cache too; labels do not
    finally:
        client.close()
