"""``buildx create``'s builder instances, kept in the store (``<root>/buildx/instances.json``).

Every build runs in-process whatever the instance, but an instance keeps buildx's meaning for what
happens to the result: the default builder (``docker`` driver) always loads it into the image
store; one made by ``buildx create`` (``docker-container`` driver unless told otherwise) keeps it
only in the build cache unless ``--load`` (or ``--push``) is given.

    load(root) -> Instances                      the instances and which one is in use
    Instances.get(name) -> Instance              NotFound (buildx's text) for an unknown name
    Instances.create(...) / use(name) / remove(name) / save()
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dockyard.errors import InvalidArgument, NotFound
from dockyard.record import asdict, field, record

DEFAULT = "default"
#: The name the default builder is also shown as (``buildx ls``/``inspect``).
DEFAULT_ALIASES = (DEFAULT, "dockyard")
DRIVERS = ("docker", "docker-container", "kubernetes", "remote")


@record
class Instance:
    name: str
    driver: str = "docker-container"
    platforms: list[str] = field(default_factory=list)

    @property
    def loads_by_default(self) -> bool:
        """The docker driver exports into the image store; the others only when asked (``--load``)."""
        return self.driver == "docker"


@record
class Instances:
    path: Path
    current: str = DEFAULT
    created: dict[str, Instance] = field(default_factory=dict)

    def get(self, name: str = "") -> Instance:
        """The instance ``name`` (the one in use when empty)."""
        name = name or self.current
        if name in DEFAULT_ALIASES:
            return Instance(DEFAULT, "docker")
        found = self.created.get(name)
        if found is None:
            raise NotFound(f'no builder "{name}" found')
        return found

    def create(self, name: str, driver: str = "", platforms: list[str] | None = None, *,
               use: bool = False) -> Instance:
        if driver and driver not in DRIVERS:
            raise InvalidArgument(f'failed to find driver "{driver}"')
        if not name:
            free = (f"builder{i}" for i in range(len(self.created) + 1))
            name = next(n for n in free if n not in self.created)
        elif name in DEFAULT_ALIASES or name in self.created:
            raise InvalidArgument(f'existing instance for "{name}" but no append mode, specify the node '
                                  "name to make changes for existing instances")
        instance = Instance(name, driver or "docker-container", list(platforms or []))
        self.created[name] = instance
        if use:
            self.current = name
        return instance

    def use(self, name: str) -> None:
        self.current = self.get(name).name

    def remove(self, name: str) -> None:
        instance = self.get(name)
        if instance.name == DEFAULT:
            raise InvalidArgument(f"{DEFAULT} is the built-in builder and cannot be removed")
        del self.created[instance.name]
        if self.current == instance.name:
            self.current = DEFAULT

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"current": self.current, "instances": [asdict(i) for i in self.created.values()]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.path)


def load(root: Path) -> Instances:
    """The store's builder instances; a missing file means only the default builder."""
    path = root / "buildx" / "instances.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return Instances(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{path}: unreadable builder instances ({exc})") from None
    created = {}
    for item in doc.get("instances") or []:
        instance = Instance(str(item["name"]), str(item.get("driver") or "docker-container"),
                            [str(p) for p in item.get("platforms") or []])
        created[instance.name] = instance
    current = str(doc.get("current") or DEFAULT)
    return Instances(path, current if current in created else DEFAULT, created)


__all__ = ["DEFAULT", "Instance", "Instances", "load"]
