"""The SQLite metadata store: schema, records, leases, cache records, concurrent writers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dockyard.errors import StoreError
from dockyard.image import ImageRecord, LayerBlob
from dockyard.metadata import SCHEMA_VERSION, CacheRecord, MetadataStore
from dockyard.oci.digest import Digest
from tests.content.storekit import root, spawn_context, tag_many

__all__ = ["root"]

A = Digest("sha256:" + "a" * 64)
B = Digest("sha256:" + "b" * 64)
C = Digest("sha256:" + "c" * 64)


def test_schema_wal_and_version(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    assert not root.exists()
    assert meta.images() == []
    assert meta.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert meta.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    meta.close()
    conn = sqlite3.connect(root / "metadata.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        MetadataStore(root / "metadata.db").images()


def test_images_tags_and_repo_digests(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    meta.put_image(ImageRecord(A, created="2024-01-01T00:00:00Z", size=10, labels={"k": "v"}, diff_ids=[B]))
    meta.put_image(ImageRecord(C, parent=str(A)))
    got = meta.get_image(A)
    assert got is not None and got.labels == {"k": "v"} and got.diff_ids == [B] and got.added > 0
    assert meta.get_image(B) is None
    assert meta.find_images("sha256:aaa") == [A]
    assert meta.find_images("sha256:") == [A, C]
    assert meta.find_images("sha256:%") == []  # LIKE wildcards are escaped
    assert meta.children(A) == [C]
    assert meta.set_tag("docker.io/library/x:latest", A) is None
    assert meta.set_tag("docker.io/library/x:latest", C) == A
    assert meta.get_tag("docker.io/library/x:latest") == C
    meta.add_repo_digest("docker.io/library/x", B, C)
    assert meta.repo_digests_for(C) == [f"docker.io/library/x@{B}"]
    assert meta.get_repo_digest("docker.io/library/x", B) == C
    meta.delete_image(C)
    assert meta.tags() == [] and meta.repo_digests() == []


def test_layers_keep_every_stored_form(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    meta.add_layer_blob(LayerBlob(A, B, "application/vnd.oci.image.layer.v1.tar+gzip", 5, 100))
    meta.add_layer_blob(LayerBlob(A, A, "application/vnd.oci.image.layer.v1.tar", 100, 100))
    forms = meta.layer_blobs(A)
    assert [f.digest for f in forms] == [A, B]  # uncompressed first
    assert meta.layer_by_blob(B) == forms[1]
    assert meta.layer_sizes() == {str(A): 100}
    meta.remove_layer_blob(A, B)
    assert [f.digest for f in meta.layer_blobs(A)] == [A]


def test_leases_expire_and_cache_records(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    meta.create_lease("l1", ttl=100)
    meta.add_lease_resource("l1", "blob", str(A))
    meta.create_lease("l2", ttl=-1)
    meta.add_lease_resource("l2", "blob", str(B))
    assert meta.lease_resources() == {("blob", str(A))}
    assert meta.expire_leases() == 1
    meta.delete_lease("l1")
    assert meta.lease_resources() == set()
    meta.put_cache(CacheRecord("key1", "snapshot", str(C), size=7))
    rec = meta.get_cache("key1")
    assert rec is not None and rec.ref == str(C) and rec.size == 7
    meta.delete_cache("key1")
    assert meta.cache_records() == []


def test_transaction_rolls_back(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    with pytest.raises(RuntimeError), meta.transaction():
        meta.set_tag("docker.io/library/x:latest", A)
        raise RuntimeError
    assert meta.tags() == []


def test_two_processes_write_at_once(root: Path) -> None:
    MetadataStore(root / "metadata.db").images()  # create the schema first
    ctx = spawn_context()
    procs = [ctx.Process(target=tag_many, args=(str(root / "metadata.db"), p)) for p in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(MetadataStore(root / "metadata.db").tags()) == 300


def test_version_1_database_is_upgraded(root: Path) -> None:
    root.mkdir(parents=True)
    conn = sqlite3.connect(root / "metadata.db")
    conn.executescript(
        "CREATE TABLE layers (diff_id TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, "
        "size INTEGER NOT NULL, uncompressed_size INTEGER NOT NULL DEFAULT -1, "
        "PRIMARY KEY (diff_id, digest));"
        f"INSERT INTO layers VALUES ('{A}', '{B}', 'x', 5, 100); PRAGMA user_version = 1;")
    conn.close()
    meta = MetadataStore(root / "metadata.db")
    assert meta.layer_blobs(A) == [LayerBlob(A, B, "x", 5, 100, -1)]
    assert meta.layer_sizes() == {str(A): 100}
    meta.set_content_size(A, 42)
    assert meta.layer_sizes() == {str(A): 42}
    assert meta.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _upgraded(root: Path, layer: LayerBlob, downgrade: str) -> MetadataStore:
    """A database holding ``layer``, taken back to an older schema by ``downgrade`` (SQL), opened again."""
    meta = MetadataStore(root / "metadata.db")
    meta.add_layer_blob(layer)
    meta.conn.executescript(downgrade)
    meta.close()
    meta = MetadataStore(root / "metadata.db")
    assert meta.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    return meta


def test_version_3_database_gains_snapshot_backed_layers(root: Path) -> None:
    from dockyard.metadata import SnapshotLayer

    meta = _upgraded(root, LayerBlob(A, B, "x", 5, 100, 90),
                     "DROP TABLE layer_snapshots; PRAGMA user_version = 3;")
    assert meta.all_layer_snapshots() == []
    form = SnapshotLayer(C, B, 1_700_000_000, 2048, 1000)
    meta.add_layer_snapshot(form)
    meta.add_layer_snapshot(SnapshotLayer(C, B, None, 1, 1))  # the first record of a snapshot stays
    meta.add_layer_snapshot(SnapshotLayer(C, A, None, 2048, 1000))
    assert meta.layer_snapshots(C) == [SnapshotLayer(C, A, None, 2048, 1000), form]
    assert meta.layer_sizes() == {str(A): 90, str(C): 1000}  # docker's size counts both kinds
    meta.remove_layer_snapshot(C, A)
    assert meta.all_layer_snapshots() == [form] and meta.layer_blobs(C) == []


def test_stack_users_counts_images_by_bottom_layers(root: Path) -> None:
    meta = MetadataStore(root / "metadata.db")
    meta.put_image(ImageRecord(A, diff_ids=[B, C]))
    meta.put_image(ImageRecord(C, diff_ids=[B]))
    assert meta.stack_users([B]) == 2
    assert meta.stack_users([B, C]) == 1
    assert meta.stack_users([C]) == 0
    assert meta.stack_users([]) == 0


LABELS = [{}, {"k": "v"}, {"": ""}, {"a": "1", "b": "x, y", "c": ": "}, {"q": 'say "hi"'},
          {"path": "C:\\dir"}, {"é": "ü"}, {"tab": "a\tb"}, {"a": "}"}, {"{": "["}]
DIFF_IDS = [[], [A], [A, B, C], [A, A]]


@pytest.mark.parametrize("labels", LABELS)
def test_labels_round_trip(root: Path, labels: dict[str, str]) -> None:
    # Read back without json for plain text, through json for escapes: the same either way.
    meta = MetadataStore(root / "metadata.db")
    meta.put_image(ImageRecord(A, labels=labels, diff_ids=[B, C]))
    got = meta.get_image(A)
    assert got is not None and got.labels == labels and got.diff_ids == [B, C]


@pytest.mark.parametrize("diff_ids", DIFF_IDS)
def test_diff_ids_round_trip(root: Path, diff_ids: list[Digest]) -> None:
    meta = MetadataStore(root / "metadata.db")
    meta.put_image(ImageRecord(A, diff_ids=diff_ids))
    assert [r.diff_ids for r in meta.images()] == [diff_ids]


@pytest.mark.parametrize("text", ['{"a": 1}', '{"a": "x", "b": 2}', '{"a": ["x"]}', '{"a": {"b": "c"}}',
                                  '{"a":"x"}', '{"a": "x",  "b": "y"}', '{"a": "x\\u00e9"}'])
def test_other_label_text_is_read_as_json(root: Path, text: str) -> None:
    # Text that put_image would not write (other types, other spacing) is still read as JSON.
    import json

    meta = MetadataStore(root / "metadata.db")
    meta.put_image(ImageRecord(A))
    with meta.transaction() as c:
        c.execute("UPDATE images SET labels = ?, diff_ids = ?", (text, f'["{B}","{C}"]'))
    got = meta.get_image(A)
    assert got is not None and got.labels == json.loads(text) and got.diff_ids == [B, C]


def test_version_4_database_gains_push_records(root: Path) -> None:
    meta = _upgraded(root, LayerBlob(A, A, "x", 5, 5, 5),
                     "DROP TABLE pushed_layers; PRAGMA user_version = 4;")
    assert meta.pushed_layer(A, "gzip") is None
    meta.add_pushed_layer(A, "gzip", B, 3)
    meta.add_pushed_layer(A, "gzip", C, 4)  # pushed again after the compression changed: the newest
    meta.add_pushed_layer(C, "zstd", B, 2)  # a layer no longer here
    assert meta.pushed_layer(A, "gzip") == (C, 4) and meta.pushed_layer(A, "zstd") is None
    assert meta.forget_pushed_layers() == 1
    assert meta.pushed_layer(A, "gzip") == (C, 4) and meta.pushed_layer(C, "zstd") is None
