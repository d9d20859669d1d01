"""The metadata store (layer L2): SQLite (WAL mode) for images, names, layers, leases and build cache.

One file, ``<store>/metadata.db``; every write runs in a ``BEGIN IMMEDIATE`` transaction, so two
processes on one store serialise their writes (``busy_timeout`` waits instead of failing). The
schema is versioned in ``PRAGMA user_version`` and upgraded in place; a newer schema than this code
knows is refused. A forked child never touches its parent's connection (it opens its own).

Tables (names are full normalised references, e.g. ``docker.io/library/busybox:latest``)::

    images(id, created, size, os, architecture, variant, labels, diff_ids, manifest_digest, parent, added)
    tags(name -> image_id, index_digest)       name:tag references (image_id: the default platform's)
    tag_platforms(name, platform -> image_id, manifest_digest)   members of a multi-platform tag's index
    repo_digests(name, digest -> image_id)     name@digest of manifests pulled or pushed
    layers(diff_id, digest, media_type, size, uncompressed_size, content_size)   stored forms of layers
    layer_snapshots(diff_id, chain_id, mtime_clamp, size, content_size)   layers kept only as the
        snapshot a build committed: the tar is written again from it when needed (never stored)
    pushed_layers(diff_id, compression -> digest, size)   what a layer compressed to on a push that
        kept no compressed copy: a later push asks the registry for that digest before compressing
    leases(id, created, expires) + lease_resources(lease_id, kind, key)    work in flight (GC roots)
    cache_records(key, kind, ref, size, created, last_used, data)  build cache (GC roots)

API of ``MetadataStore(path)`` (methods called inside ``transaction()`` join it)::

    transaction()
    put_image get_image images delete_image find_images children stack_users
    set_tag get_tag remove_tag tags tags_for
    set_tag_index tag_index tag_platforms indexed_images
    add_repo_digest get_repo_digest remove_repo_digest repo_digests repo_digests_for
    add_layer_blob layer_blobs layer_by_blob all_layer_blobs remove_layer_blob layer_sizes
    set_content_size
    add_layer_snapshot layer_snapshots all_layer_snapshots remove_layer_snapshot
    add_pushed_layer pushed_layer forget_pushed_layers
    create_lease add_lease_resource delete_lease lease_resources lease_ids expire_leases
    put_cache get_cache delete_cache cache_records
"""

from __future__ import annotations

import _thread  # its RLock is the one threading.RLock() makes, without importing threading
import _weakref  # the weak reference type without the weakref module (``dockyard images`` start-up)
import os
import sqlite3
import time

from dockyard.errors import NO_SPACE_ERRNOS, StoreError, disk_full, no_space
from dockyard.image import ImageRecord
from dockyard.oci.digest import Digest

# Not ``typing.TYPE_CHECKING``: the listing path imports no typing. Listing images builds no
# ``LayerBlob``, ``CacheRecord`` or ``TagPlatform`` (records): they are imported on first use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path
    from types import TracebackType
    from typing import Any
    from weakref import ReferenceType

    from dockyard.image.layer import LayerBlob
    from dockyard.metadata.records import CacheRecord as CacheRecord
    from dockyard.metadata.records import SnapshotLayer as SnapshotLayer
    from dockyard.metadata.records import TagPlatform as TagPlatform

SCHEMA_VERSION = 5

# Upgrades from each older version (the full schema above is for a new database).
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE layers ADD COLUMN content_size INTEGER NOT NULL DEFAULT -1"],
    2: ["ALTER TABLE tags ADD COLUMN index_digest TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE IF NOT EXISTS tag_platforms (name TEXT NOT NULL, platform TEXT NOT NULL, "
        "image_id TEXT NOT NULL, manifest_digest TEXT NOT NULL, PRIMARY KEY (name, platform))",
        "CREATE INDEX IF NOT EXISTS tag_platforms_image ON tag_platforms(image_id)"],
    3: [],  # layer_snapshots: a new table, which the full schema creates
    4: [],  # pushed_layers: the same
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    variant TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    diff_ids TEXT NOT NULL DEFAULT '[]',
    manifest_digest TEXT NOT NULL DEFAULT '',
    parent TEXT NOT NULL DEFAULT '',
    added REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_parent ON images(parent);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    added REAL NOT NULL DEFAULT 0,
    index_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS tag_platforms (
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    image_id TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    PRIMARY KEY (name, platform)
);
CREATE INDEX IF NOT EXISTS tag_platforms_image ON tag_platforms(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (name, digest)
);
CREATE INDEX IF NOT EXISTS repo_digests_image ON repo_digests(image_id);
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL DEFAULT -1,
    content_size INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (diff_id, digest)
);
CREATE INDEX IF NOT EXISTS layers_digest ON layers(digest);
CREATE TABLE IF NOT EXISTS layer_snapshots (
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    mtime_clamp INTEGER,
    size INTEGER NOT NULL,
    content_size INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (diff_id, chain_id)
);
CREATE INDEX IF NOT EXISTS layer_snapshots_chain ON layer_snapshots(chain_id);
CREATE TABLE IF NOT EXISTS pushed_layers (
    diff_id TEXT NOT NULL,
    compression TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, compression)
);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, key)
);
CREATE TABLE IF NOT EXISTS cache_records (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
"""

# Resource kinds a lease or cache record can hold on to.
BLOB = "blob"
SNAPSHOT = "snapshot"
IMAGE = "image"


def __getattr__(name: str) -> object:
    if name in ("CacheRecord", "SnapshotLayer", "TagPlatform"):
        from dockyard.metadata import records

        return getattr(records, name)
    raise AttributeError(f"module 'dockyard.metadata' has no attribute {name!r}")


_IMAGE_COLUMNS = ("id, created, size, os, architecture, variant, labels, diff_ids, manifest_digest, "
                  "parent, added")


_LAYER_COLUMNS = "diff_id, digest, media_type, size, uncompressed_size, content_size"


def _trusted(value: str) -> Digest:
    """A ``Digest`` for a value validated when it was written (skips re-validation: listing is hot)."""
    return str.__new__(Digest, value)


def _row_to_image(row: tuple[Any, ...]) -> ImageRecord:
    return ImageRecord(
        id=_trusted(row[0]),
        created=str(row[1]), size=int(row[2]),
        os=str(row[3]), architecture=str(row[4]), variant=str(row[5]),
        labels=_string_dict(str(row[6])),
        diff_ids=[_trusted(d) for d in _string_list(str(row[7]))],
        manifest_digest=str(row[8]), parent=str(row[9]), added=float(row[10]),
    )


# The ``labels`` and ``diff_ids`` columns hold ``json.dumps`` of a dict of strings and of a list of
# strings (``put_image``). Without a backslash, such text has no escape, so every ``"`` delimits a
# string and the text splits on them; ``dockyard images`` then imports neither json nor re (json's
# import compiles regexes). Any other text (escapes, other types, another layout) goes to json.

def _string_list(text: str) -> list[str]:
    """``json.loads`` of a JSON list of strings as ``json.dumps`` writes it."""
    if text == "[]":
        return []
    parts = text.split('"')
    if ("\\" not in text and parts[0] == "[" and parts[-1] == "]" and len(parts) % 2 == 1
            and all(sep == ", " for sep in parts[2:-1:2])):
        return parts[1::2]
    import json

    loaded: list[str] = json.loads(text)
    return loaded


def _string_dict(text: str) -> dict[str, str]:
    """``json.loads`` of a JSON object of strings as ``json.dumps`` writes it."""
    if text == "{}":
        return {}
    parts = text.split('"')
    if ("\\" not in text and parts[0] == "{" and parts[-1] == "}" and len(parts) % 4 == 1
            and all(sep == ": " for sep in parts[2::4]) and all(sep == ", " for sep in parts[4:-1:4])):
        return dict(zip(parts[1::4], parts[3::4], strict=True))
    import json

    loaded: dict[str, str] = json.loads(text)
    return loaded


# SQLite connections must not cross fork(): a child that used or even closed (finalised) its
# parent's connection can corrupt the parent's view of the WAL. In a child, every store forgets its
# inherited connection (kept referenced here, so it is never finalised) and opens its own.
# Weak references to the live stores: a store's reference leaves the set when the store is collected.
_STORES: set[ReferenceType[MetadataStore]] = set()
_INHERITED: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for ref in list(_STORES):
        store = ref()
        if store is None:
            continue
        if store._conn is not None:
            _INHERITED.append(store._conn)
            store._conn = None
        store._depth = 0
        store._lock = _thread.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (``sqlite3.Connection`` cannot)."""


# Weak references to the open connections (a store, or a transaction that outlived it, holds each).
_CONNECTIONS: set[ReferenceType[_Connection]] = set()


def close_all() -> None:
    """Close every connection still open (SQLite checkpoints the write-ahead log into the database
    file and syncs it; an unfinished transaction rolls back): for a process about to end without
    its objects being finalised."""
    for ref in list(_CONNECTIONS):
        conn = ref()
        if conn is not None:
            conn.close()


class _Transaction:
    """What :meth:`MetadataStore.transaction` returns: holds the store's lock for the block; the
    outermost one begins, commits, or rolls back on an exception. A class, not
    ``contextlib.contextmanager``: ``dockyard images`` imports this module, not contextlib."""

    __slots__ = ("_conn", "_outer", "_store")

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._outer = False

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        store._lock.acquire()
        try:
            conn = self._conn = store.conn
            if store._depth:
                store._depth += 1
                return conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                store._raise_if_full(exc)
                raise
            store._depth = 1
            self._outer = True
            return conn
        except BaseException:
            store._lock.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        store = self._store
        try:
            if not self._outer:
                store._depth -= 1
                return
            store._depth = 0
            conn = self._conn
            if exc is not None:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # a failed COMMIT or full disk may have ended it
                    pass
                store._raise_if_full(exc)
                return  # the block's exception goes on
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as commit_error:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                store._raise_if_full(commit_error)
                raise
        finally:
            store._lock.release()


class MetadataStore:
    """SQLite-backed metadata; the connection opens lazily (and the file is created on first use).

    Safe across ``fork``: the child opens its own connection. One store may be shared by threads
    (calls are serialised by a lock).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0) -> None:
        self._path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._depth = 0
        self._lock = _thread.RLock()
        _STORES.add(_weakref.ref(self, _STORES.discard))

    @property
    def path(self) -> Path:
        from pathlib import Path  # not at import: ``dockyard images`` has no use for pathlib

        return Path(self._path)

    # -- connection and transactions ------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
            conn = sqlite3.connect(self._path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False, factory=_Connection)
            _CONNECTIONS.add(_weakref.ref(conn, _CONNECTIONS.discard))
        except (OSError, sqlite3.Error) as exc:
            self._raise_if_full(exc)
            raise StoreError(f"cannot open metadata database {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL survives a process kill; only an OS crash can lose the last commit.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"metadata database {self.path} has schema version {version}; this "
                                 f"dockyard knows up to {SCHEMA_VERSION}")
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                # Re-read under the write lock: another process may have upgraded it meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                else:
                    for v in range(version, SCHEMA_VERSION):
                        for statement in _MIGRATIONS[v]:
                            words = statement.split()
                            # A column for a table this old database lacks: the schema below creates it whole.
                            if words[:2] == ["ALTER", "TABLE"] and not conn.execute(
                                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                    (words[2],)).fetchone():
                                continue
                            conn.execute(statement)
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            self._raise_if_full(exc)
            raise StoreError(f"metadata database {self.path} is unusable: {exc}") from None
        return conn

    def _raise_if_full(self, exc: BaseException) -> None:
        """Raise ``NoSpace`` when ``exc`` comes from a full disk (SQLite may only say "disk I/O error")."""
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            raise no_space(self.path) from None
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", 0) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
            or ("disk I/O error" in str(exc) and disk_full(self.path.parent))
        ):
            raise no_space(self.path) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def transaction(self) -> _Transaction:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        return _Transaction(self)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._raise_if_full(exc)
                raise

    # -- images -----------------------------------------------------------------------------------

    def put_image(self, rec: ImageRecord) -> None:
        """Insert or update an image row (``added`` is kept from the first insert)."""
        import json

        with self.transaction() as c:
            c.execute(
                f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET created=excluded.created, size=excluded.size, "
                "os=excluded.os, architecture=excluded.architecture, variant=excluded.variant, "
                "labels=excluded.labels, diff_ids=excluded.diff_ids, "
                "manifest_digest=CASE WHEN excluded.manifest_digest != '' THEN excluded.manifest_digest "
                "ELSE images.manifest_digest END, "
                "parent=CASE WHEN excluded.parent != '' THEN excluded.parent ELSE images.parent END",
                (str(Digest(rec.id)), rec.created, rec.size, rec.os, rec.architecture, rec.variant,
                 json.dumps(rec.labels, sort_keys=True), json.dumps([str(d) for d in rec.diff_ids]),
                 rec.manifest_digest, rec.parent, rec.added or time.time()),
            )

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,))
        return _row_to_image(rows[0]) if rows else None

    def images(self) -> list[ImageRecord]:
        return [_row_to_image(r) for r in self._query(f"SELECT {_IMAGE_COLUMNS} FROM images")]

    def find_images(self, id_prefix: str) -> list[Digest]:
        """IDs of images whose ``sha256:<hex>`` starts with ``id_prefix`` (give the algorithm)."""
        escaped = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query("SELECT id FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))
        return [Digest(str(r[0])) for r in rows]

    def children(self, image_id: str) -> list[Digest]:
        rows = self._query("SELECT id FROM images WHERE parent = ?", (image_id,))
        return [Digest(str(r[0])) for r in rows]

    def stack_users(self, diff_ids: list[Digest]) -> int:
        """How many images have ``diff_ids`` as their bottom layers (i.e. use that chain ID)."""
        if not diff_ids:
            return 0
        import json

        # diff_ids is stored as json.dumps(list): a prefix of that text selects the stacks.
        prefix = json.dumps([str(d) for d in diff_ids])[:-1]
        rows = self._query("SELECT COUNT(*) FROM images WHERE substr(diff_ids, 1, ?) = ?",
                           (len(prefix), prefix))
        return int(rows[0][0])

    def delete_image(self, image_id: str) -> None:
        """Remove an image row with its tags and repo digests (its blobs are left to GC)."""
        with self.transaction() as c:
            c.execute("DELETE FROM tag_platforms WHERE name IN (SELECT name FROM tags WHERE image_id = ?)",
                      (image_id,))
            c.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
            c.execute("DELETE FROM tag_platforms WHERE image_id = ?", (image_id,))
            c.execute("DELETE FROM repo_digests WHERE image_id = ?", (image_id,))
            c.execute("DELETE FROM images WHERE id = ?", (image_id,))

    # -- tags and repo digests ----------------------------------------------------------------------

    def set_tag(self, name: str, image_id: str) -> str | None:
        """Point ``name`` (a full name:tag) at one image (a multi-platform tag becomes a single one);
        return the image it pointed to before."""
        return self.set_tag_index(name, image_id, "", [])

    def set_tag_index(self, name: str, image_id: str, index_digest: str,
                      members: list[TagPlatform]) -> str | None:
        """Point ``name`` at an index (blob ``index_digest``) of ``members``; ``image_id`` is the one a
        platform-less lookup gets. Return the image the tag pointed to before."""
        with self.transaction() as c:
            row = c.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
            c.execute("INSERT INTO tags (name, image_id, added, index_digest) VALUES (?,?,?,?) "
                      "ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, added=excluded.added, "
                      "index_digest=excluded.index_digest",
                      (name, image_id, time.time(), index_digest))
            c.execute("DELETE FROM tag_platforms WHERE name = ?", (name,))
            for m in members:
                c.execute("INSERT INTO tag_platforms (name, platform, image_id, manifest_digest) "
                          "VALUES (?,?,?,?)", (name, m.platform, str(Digest(m.image_id)),
                                               str(Digest(m.manifest_digest))))
            return str(row[0]) if row else None

    def tag_index(self, name: str) -> str:
        """The index digest of a multi-platform tag ("" for a single-platform or unknown tag)."""
        rows = self._query("SELECT index_digest FROM tags WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else ""

    def tag_platforms(self, name: str) -> list[TagPlatform]:
        """The members of a multi-platform tag, by platform (none for a single-platform tag)."""
        from dockyard.metadata.records import TagPlatform

        return [TagPlatform(str(p), _trusted(i), _trusted(m)) for p, i, m in self._query(
            "SELECT platform, image_id, manifest_digest FROM tag_platforms WHERE name = ? ORDER BY platform",
            (name,))]

    def indexed_images(self) -> dict[str, list[str]]:
        """Image ID -> the multi-platform tags that hold it."""
        out: dict[str, list[str]] = {}
        for name, image_id in self._query("SELECT name, image_id FROM tag_platforms ORDER BY name"):
            out.setdefault(str(image_id), []).append(str(name))
        return out

    def get_tag(self, name: str) -> Digest | None:
        rows = self._query("SELECT image_id FROM tags WHERE name = ?", (name,))
        return Digest(str(rows[0][0])) if rows else None

    def remove_tag(self, name: str) -> bool:
        with self.transaction() as c:
            c.execute("DELETE FROM tag_platforms WHERE name = ?", (name,))
            return c.execute("DELETE FROM tags WHERE name = ?", (name,)).rowcount > 0

    def tags(self) -> list[tuple[str, Digest]]:
        """Every (name:tag, image id), sorted by name."""
        return [(str(n), _trusted(i))
                for n, i in self._query("SELECT name, image_id FROM tags ORDER BY name")]

    def tags_for(self, image_id: str) -> list[str]:
        return [str(r[0]) for r in
                self._query("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]

    def add_repo_digest(self, name: str, digest: str, image_id: str) -> None:
        """Record that manifest ``digest`` in repository ``name`` (no tag) is this image."""
        with self.transaction() as c:
            c.execute("INSERT INTO repo_digests (name, digest, image_id) VALUES (?,?,?) "
                      "ON CONFLICT(name, digest) DO UPDATE SET image_id=excluded.image_id",
                      (name, str(Digest(digest)), image_id))

    def get_repo_digest(self, name: str, digest: str) -> Digest | None:
        rows = self._query("SELECT image_id FROM repo_digests WHERE name = ? AND digest = ?", (name, digest))
        return Digest(str(rows[0][0])) if rows else None

    def remove_repo_digest(self, name: str, digest: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM repo_digests WHERE name = ? AND digest = ?",
                             (name, digest)).rowcount > 0

    def repo_digests(self) -> list[tuple[str, Digest, Digest]]:
        """Every (repository name, manifest digest, image id)."""
        return [(str(n), _trusted(d), _trusted(i)) for n, d, i in
                self._query("SELECT name, digest, image_id FROM repo_digests ORDER BY name, digest")]

    def repo_digests_for(self, image_id: str) -> list[str]:
        """``name@digest`` strings for one image."""
        return [f"{n}@{d}" for n, d in self._query(
            "SELECT name, digest FROM repo_digests WHERE image_id = ? ORDER BY name, digest", (image_id,))]

    # -- layers ----------------------------------------------------------------------------------

    def add_layer_blob(self, layer: LayerBlob) -> None:
        with self.transaction() as c:
            c.execute(f"INSERT INTO layers ({_LAYER_COLUMNS}) "
                      "VALUES (?,?,?,?,?,?) ON CONFLICT(diff_id, digest) DO UPDATE SET "
                      "media_type=excluded.media_type, size=excluded.size, "
                      "uncompressed_size=MAX(layers.uncompressed_size, excluded.uncompressed_size), "
                      "content_size=MAX(layers.content_size, excluded.content_size)",
                      (str(Digest(layer.diff_id)), str(Digest(layer.digest)), layer.media_type, layer.size,
                       layer.uncompressed_size, layer.content_size))

    def layer_blobs(self, diff_id: str) -> list[LayerBlob]:
        """Stored forms of one layer, uncompressed first, then by size."""
        rows = self._query(f"SELECT {_LAYER_COLUMNS} FROM layers "
                           "WHERE diff_id = ? ORDER BY (digest = diff_id) DESC, size", (diff_id,))
        return [_row_to_layer(r) for r in rows]

    def layer_by_blob(self, digest: str) -> LayerBlob | None:
        rows = self._query(f"SELECT {_LAYER_COLUMNS} FROM layers "
                           "WHERE digest = ?", (digest,))
        return _row_to_layer(rows[0]) if rows else None

    def all_layer_blobs(self) -> list[LayerBlob]:
        return [_row_to_layer(r) for r in self._query(
            f"SELECT {_LAYER_COLUMNS} FROM layers")]

    def remove_layer_blob(self, diff_id: str, digest: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM layers WHERE diff_id = ? AND digest = ?", (diff_id, digest))

    def layer_sizes(self) -> dict[str, int]:
        """diff_id -> the layer's size as docker reports it (content size; the tar's if unknown)."""
        return {str(d): int(c if c >= 0 else u) for d, c, u in self._query(
            "SELECT diff_id, MAX(content_size), MAX(uncompressed_size) FROM ("
            "SELECT diff_id, content_size, uncompressed_size FROM layers UNION ALL "
            "SELECT diff_id, content_size, size FROM layer_snapshots) GROUP BY diff_id")}

    def add_layer_snapshot(self, layer: SnapshotLayer) -> None:
        """Record that snapshot ``chain_id`` alone holds layer ``diff_id`` (its tar is made again from
        it, with ``mtime_clamp``); call it in the transaction that publishes the snapshot."""
        with self.transaction() as c:
            c.execute("INSERT INTO layer_snapshots (diff_id, chain_id, mtime_clamp, size, content_size) "
                      "VALUES (?,?,?,?,?) ON CONFLICT(diff_id, chain_id) DO NOTHING",
                      (str(Digest(layer.diff_id)), str(Digest(layer.chain_id)), layer.mtime_clamp,
                       layer.size, layer.content_size))

    def layer_snapshots(self, diff_id: str) -> list[SnapshotLayer]:
        """The snapshots recorded as holding layer ``diff_id`` (whether or not they are still there)."""
        return [_row_to_snapshot_layer(r) for r in self._query(
            f"SELECT {_SNAPSHOT_LAYER_COLUMNS} FROM layer_snapshots WHERE diff_id = ? ORDER BY chain_id",
            (diff_id,))]

    def all_layer_snapshots(self) -> list[SnapshotLayer]:
        return [_row_to_snapshot_layer(r) for r in self._query(
            f"SELECT {_SNAPSHOT_LAYER_COLUMNS} FROM layer_snapshots")]

    def remove_layer_snapshot(self, diff_id: str, chain_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM layer_snapshots WHERE diff_id = ? AND chain_id = ?", (diff_id, chain_id))

    def add_pushed_layer(self, diff_id: str, compression: str, digest: str, size: int) -> None:
        """Record what layer ``diff_id`` compressed to when it was pushed without keeping the bytes."""
        with self.transaction() as c:
            c.execute("INSERT INTO pushed_layers (diff_id, compression, digest, size) VALUES (?,?,?,?) "
                      "ON CONFLICT(diff_id, compression) DO UPDATE SET digest=excluded.digest, "
                      "size=excluded.size", (str(Digest(diff_id)), compression, str(Digest(digest)), size))

    def pushed_layer(self, diff_id: str, compression: str) -> tuple[Digest, int] | None:
        """The digest and size layer ``diff_id`` had in ``compression`` when last pushed, if known."""
        rows = self._query("SELECT digest, size FROM pushed_layers WHERE diff_id = ? AND compression = ?",
                           (diff_id, compression))
        return (_trusted(rows[0][0]), int(rows[0][1])) if rows else None

    def forget_pushed_layers(self) -> int:
        """Drop the push records of layers the store no longer holds in any form; return how many."""
        with self.transaction() as c:
            gone = c.execute("DELETE FROM pushed_layers WHERE diff_id NOT IN "
                             "(SELECT diff_id FROM layers UNION SELECT diff_id FROM layer_snapshots)")
            return int(gone.rowcount)

    def set_content_size(self, diff_id: str, size: int) -> None:
        """Record a layer's content size (learnt e.g. when it was unpacked) where it is unknown."""
        with self.transaction() as c:
            c.execute("UPDATE layers SET content_size = ? WHERE diff_id = ? AND content_size < 0",
                      (size, diff_id))

    # -- leases ----------------------------------------------------------------------------------

    def create_lease(self, lease_id: str, ttl: float) -> None:
        now = time.time()
        with self.transaction() as c:
            c.execute("INSERT INTO leases (id, created, expires) VALUES (?,?,?) ON CONFLICT(id) DO UPDATE "
                      "SET expires=excluded.expires", (lease_id, now, now + ttl))

    def add_lease_resource(self, lease_id: str, kind: str, key: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?,?,?)",
                      (lease_id, kind, key))

    def delete_lease(self, lease_id: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM lease_resources WHERE lease_id = ?", (lease_id,))
            c.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    def lease_resources(self, now: float | None = None) -> set[tuple[str, str]]:
        """(kind, key) held by leases that have not expired."""
        now = time.time() if now is None else now
        return {(str(k), str(v)) for k, v in self._query(
            "SELECT r.kind, r.key FROM lease_resources r JOIN leases l ON l.id = r.lease_id "
            "WHERE l.expires > ?", (now,))}

    def lease_ids(self) -> list[str]:
        return [str(r[0]) for r in self._query("SELECT id FROM leases ORDER BY id")]

    def expire_leases(self, now: float | None = None) -> int:
        """Delete expired leases; return how many."""
        now = time.time() if now is None else now
        with self.transaction() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM leases WHERE expires <= ?", (now,))]
            for lease_id in ids:
                c.execute("DELETE FROM lease_resources WHERE lease_id = ?", (lease_id,))
                c.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
            return len(ids)

    # -- build cache -----------------------------------------------------------------------------

    def put_cache(self, rec: CacheRecord) -> None:
        now = time.time()
        with self.transaction() as c:
            c.execute("INSERT INTO cache_records (key, kind, ref, size, created, last_used, data) "
                      "VALUES (?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET kind=excluded.kind, "
                      "ref=excluded.ref, size=excluded.size, last_used=excluded.last_used, "
                      "data=excluded.data",
                      (rec.key, rec.kind, rec.ref, rec.size, rec.created or now, rec.last_used or now,
                       rec.data))

    def get_cache(self, key: str, *, touch: bool = True) -> CacheRecord | None:
        rows = self._query("SELECT key, kind, ref, size, created, last_used, data FROM cache_records "
                           "WHERE key = ?", (key,))
        if not rows:
            return None
        if touch:
            with self.transaction() as c:
                c.execute("UPDATE cache_records SET last_used = ? WHERE key = ?", (time.time(), key))
        return _row_to_cache(rows[0])

    def touch_caches(self, keys: Collection[str]) -> None:
        """Mark cache records used now (a build's hits, in one write)."""
        if keys:
            now = time.time()
            with self.transaction() as c:
                c.executemany("UPDATE cache_records SET last_used = ? WHERE key = ?",
                              [(now, key) for key in keys])

    def delete_cache(self, key: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM cache_records WHERE key = ?", (key,))

    def cache_records(self) -> list[CacheRecord]:
        return [_row_to_cache(r) for r in self._query(
            "SELECT key, kind, ref, size, created, last_used, data FROM cache_records ORDER BY key")]


def _row_to_layer(r: tuple[Any, ...]) -> LayerBlob:
    from dockyard.image.layer import LayerBlob

    return LayerBlob(Digest(str(r[0])), Digest(str(r[1])), str(r[2]), int(r[3]), int(r[4]), int(r[5]))


_SNAPSHOT_LAYER_COLUMNS = "diff_id, chain_id, mtime_clamp, size, content_size"


def _row_to_snapshot_layer(r: tuple[Any, ...]) -> SnapshotLayer:
    from dockyard.metadata.records import SnapshotLayer

    return SnapshotLayer(Digest(str(r[0])), Digest(str(r[1])), None if r[2] is None else int(r[2]),
                         int(r[3]), int(r[4]))


def _row_to_cache(r: tuple[Any, ...]) -> CacheRecord:
    from dockyard.metadata.records import CacheRecord

    return CacheRecord(str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]),
                       float(r[5]), str(r[6]))
