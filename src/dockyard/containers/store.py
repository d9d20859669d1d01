"""Container records on disk: one directory per container, its JSON files, its lock, ids and names."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.executor.base import run_dir_owner_alive
from dockyard.record import record

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"
LOST_EXIT_CODE = 255  # what Docker records for a container whose daemon died under it
LEASE_TTL = 100 * 365 * 24 * 3600.0  # a container keeps its image until rm


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)  # readers without the lock see the old or the new file, never half of one


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, dict)
    return data


def new_state() -> dict[str, Any]:
    """The ``state.json`` of a container just created."""
    return {"State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "RestartCount": 0, "Monitor": None, "ManualStop": False}


def monitor_alive(state: dict[str, Any]) -> bool:
    """Whether the monitor named in ``state`` still runs (pid and start time both match)."""
    mon = state.get("Monitor")
    return mon is not None and run_dir_owner_alive(f"{mon['Pid']}.{mon['Start']}")


def lost(state: dict[str, Any]) -> bool:
    """Running or restarting by its record, but its monitor is gone."""
    st = state["State"]
    return bool(st["Running"] or st["Restarting"]) and not monitor_alive(state)


def effective_state(state: dict[str, Any], finished_at: str) -> dict[str, Any]:
    """``state`` as it truly is: running, restarting or paused without a live monitor means it died with
    its monitor (the executor kills a run whose owner goes away), so it reads as exited with 255."""
    if lost(state):
        st = {**state["State"], "Status": "exited", "Running": False, "Restarting": False, "Paused": False,
              "Pid": 0, "ExitCode": LOST_EXIT_CODE, "FinishedAt": finished_at,
              "Error": state["State"]["Error"] or "container monitor is gone"}
        return {**state, "State": st, "Monitor": None}
    return state


@record(slots=True)
class Record:
    """One container: its directory and what its files say (``state`` is the effective one)."""

    path: Path
    config: dict[str, Any]
    state: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.config["Id"])

    @property
    def name(self) -> str:
        return str(self.config["Name"]).lstrip("/")

    @property
    def log_path(self) -> Path:
        return self.path / f"{self.id}-json.log"


class ContainerStore:
    """The containers of one store root: ``root/containers``."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "containers"

    @contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def names_lock(self) -> Any:
        """Held while a name is taken or changed, so that two creates cannot take the same one."""
        return self._flock(self.dir / ".names.lock")

    def op_lock(self, record: Record) -> Any:
        """Held by a CLI for a whole operation (start, stop, rm...): two CLIs on one container take turns."""
        return self._flock(record.path / "lock")

    def state_lock(self, record: Record) -> Any:
        """Held briefly to read, decide and write ``state.json`` (CLIs and the monitor)."""
        return self._flock(record.path / "state.lock")

    def ids(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir()
                      if len(p.name) == 64 and (p / "config.json").exists())

    def load(self, cid: str) -> Record:
        path = self.dir / cid
        try:
            config = _read_json(path / "config.json")
            state = _read_json(path / "state.json")
        except (OSError, ValueError, AssertionError):
            raise NotFound(f"No such container: {cid}") from None
        if lost(state):
            state = self._record_lost(path, state)
        return Record(path, config, state)

    def _record_lost(self, path: Path, state: dict[str, Any]) -> dict[str, Any]:
        """Write down once that the container died with its monitor (when it was found, as Docker does
        on a restart after a crash); without the lock at hand, only say so."""
        from dockyard.containers.logs import now_rfc3339

        fd = os.open(path / "state.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return effective_state(state, now_rfc3339())  # someone is writing: they will see it too
            fresh = _read_json(path / "state.json")
            if not lost(fresh):
                return fresh
            fixed = effective_state(fresh, now_rfc3339())
            _write_json(path / "state.json", fixed)
            return fixed
        finally:
            os.close(fd)

    def all(self) -> list[Record]:
        out = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except NotFound:
                continue  # removed meanwhile
        return out

    def find(self, ref: str) -> Record:
        """By full id, name (with or without a leading /) or unique id prefix, as Docker looks up."""
        if not ref:
            raise NotFound("No such container: ")
        records = self.all()
        for rec in records:
            if rec.id == ref or rec.name == ref.lstrip("/"):
                return rec
        matches = [rec for rec in records if rec.id.startswith(ref)]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def reload(self, record: Record) -> Record:
        return self.load(record.id)

    def write_state(self, record: Record, state: dict[str, Any]) -> None:
        _write_json(record.path / "state.json", state)
        record.state = state

    def write_config(self, record: Record) -> None:
        _write_json(record.path / "config.json", record.config)

    def check_name(self, name: str, own_id: str = "") -> str:
        """``name`` checked (Docker's pattern) and free; call with :meth:`names_lock` held."""
        if not NAME_RE.match(name):
            raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                  "are allowed")
        bare = name.lstrip("/")
        for rec in self.all():
            if rec.name == bare and rec.id != own_id:
                raise Conflict(f'Conflict. The container name "/{bare}" is already in use by container '
                                    f'"{rec.id}". You have to remove (or rename) that container to be able '
                                    "to reuse that name.")
        return bare

    def create(self, config: dict[str, Any]) -> Record:
        """A new directory for ``config`` (its ``Id`` and ``Name`` are filled in here when empty)."""
        with self.names_lock():
            cid = str(config.get("Id") or secrets.token_hex(32))
            name = config.get("Name") or ""
            name = self.check_name(name, cid) if name else self._random_name()
            config = {**config, "Id": cid, "Name": "/" + name}
            path = self.dir / cid
            (path / "rootfs").mkdir(parents=True, mode=0o700)
            record = Record(path, config, new_state())
            _write_json(path / "state.json", record.state)
            _write_json(path / "config.json", config)  # last: a directory without it is not a container
            return record

    def _random_name(self) -> str:
        taken = {rec.name for rec in self.all()}
        while True:
            name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
            if name not in taken:
                return name

    def delete(self, record: Record) -> None:
        (record.path / "config.json").unlink(missing_ok=True)
        shutil.rmtree(record.path, ignore_errors=True)


_ADJECTIVES = ("admiring", "brave", "clever", "dreamy", "eager", "focused", "gallant", "happy", "jolly",
               "keen", "loving", "modest", "nifty", "quirky", "relaxed", "serene", "tender", "vibrant",
               "wizardly", "zealous")
_SURNAMES = ("archimedes", "babbage", "curie", "darwin", "euclid", "fermi", "galileo", "hopper", "kepler",
             "lovelace", "mendel", "newton", "noether", "pascal", "ritchie", "shannon", "tesla", "turing",
             "wozniak", "yonath")
