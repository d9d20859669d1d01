"""Where team state lives: a small key-value interface with a SQLite and an object-store implementation.

Records are JSON objects, grouped by namespace (``users``, ``projects``, ``robots``, ...). Besides keyed
records there are append-only logs (``audit``, ``deliveries``): entries are only ever added.

``SqliteKV`` keeps ``team.db`` beside the blobs of a filesystem registry; ``ObjectKV`` keeps one object
per record under ``_team/`` in the bucket of an S3 registry (log entries get keys that sort by time and
never collide, so replicas sharing a bucket append without coordination).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

Record = dict[str, Any]


class KV(Protocol):
    """Records by (namespace, key), and append-only logs by namespace."""

    def get(self, ns: str, key: str) -> Record | None: ...
    def put(self, ns: str, key: str, value: Record) -> None: ...
    def delete(self, ns: str, key: str) -> bool: ...
    def items(self, ns: str) -> dict[str, Record]: ...
    def append(self, log: str, entry: Record) -> None: ...
    def entries(self, log: str) -> Iterator[Record]: ...


class SqliteKV:
    """``KV`` in one SQLite file (WAL mode: the server and CLI commands may use it at once)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value TEXT, PRIMARY KEY (ns, key))")
            db.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, "
                       "value TEXT)")

    def _db(self) -> sqlite3.Connection:
        # A connection per thread: the registry calls storage from its worker threads.
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def get(self, ns: str, key: str) -> Record | None:
        row = self._db().execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, ns: str, key: str, value: Record) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, json.dumps(value)))

    def delete(self, ns: str, key: str) -> bool:
        with self._db() as db:
            return db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key)).rowcount > 0

    def items(self, ns: str) -> dict[str, Record]:
        rows = self._db().execute("SELECT key, value FROM kv WHERE ns=? ORDER BY key", (ns,))
        return {key: json.loads(value) for key, value in rows}

    def append(self, log: str, entry: Record) -> None:
        with self._db() as db:
            db.execute("INSERT INTO log (name, value) VALUES (?, ?)", (log, json.dumps(entry)))

    def entries(self, log: str) -> Iterator[Record]:
        rows = self._db().execute("SELECT value FROM log WHERE name=? ORDER BY seq", (log,)).fetchall()
        for (value,) in rows:
            yield json.loads(value)


class ObjectKV:
    """``KV`` as objects in the registry's bucket: ``_team/<ns>/<key>`` and ``_team/log/<name>/<stamp>``.

    Uses the object primitives of an ``S3Storage`` (its keys, client and error mapping)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    def _key(self, ns: str, key: str = "") -> str:
        # Keys may hold characters (``$``, ``+``) S3 allows but that read badly in a listing: hex them.
        return str(self.storage._key("_team", ns, key.encode().hex()))

    def get(self, ns: str, key: str) -> Record | None:
        data = self.storage._read(self._key(ns, key))
        return json.loads(data) if data is not None else None

    def put(self, ns: str, key: str, value: Record) -> None:
        self.storage._put(self._key(ns, key), json.dumps(value).encode())

    def delete(self, ns: str, key: str) -> bool:
        return bool(self.storage._delete(self._key(ns, key)))

    def items(self, ns: str) -> dict[str, Record]:
        prefix = self._key(ns)
        found: dict[str, Record] = {}
        for entry in self.storage._list(prefix):
            name = str(entry.get("Key", ""))[len(prefix):]
            data = self.storage._read(prefix + name)
            if data is not None:
                found[bytes.fromhex(name).decode()] = json.loads(data)
        return dict(sorted(found.items()))

    def append(self, log: str, entry: Record) -> None:
        # Time first so a listing is in order; random last so two replicas never write the same key.
        stamp = f"{time.time_ns():020d}-{os.urandom(6).hex()}"
        self.storage._put(str(self.storage._key("_team", "log", log, stamp)), json.dumps(entry).encode())

    def entries(self, log: str) -> Iterator[Record]:
        prefix = str(self.storage._key("_team", "log", log)) + "/"
        for entry in self.storage._list(prefix):
            data = self.storage._read(str(entry["Key"]))
            if data is not None:
                yield json.loads(data)


def open_kv(storage: Any) -> KV:
    """The team store of a registry storage: SQLite beside a directory's blobs, objects in a bucket."""
    root = getattr(storage, "root", None)
    if isinstance(root, Path):
        return SqliteKV(root / "team.db")
    return ObjectKV(storage)
