"""Process-wide settings resolved from flags and the environment (layer L5).

Store-root resolution: an explicit ``--root``, else ``$DOCKYARD_ROOT``, else ``/var/lib/dockyard`` for
root, else ``$XDG_DATA_HOME/dockyard`` (``~/.local/share/dockyard``), also in rootless mode, where the
process is uid 0 of its own user namespace. Other settings may be added here.
"""

from __future__ import annotations

import os

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` imports neither typing nor pathlib (``root_dir``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.registry.client import RegistryOptions

SYSTEM_ROOT = "/var/lib/dockyard"


def default_root() -> Path:
    """The store directory used when neither ``--root`` nor ``DOCKYARD_ROOT`` is given."""
    from pathlib import Path

    return Path(_default_root())


def _default_root() -> str:
    if os.geteuid() == 0 and not os.environ.get("DOCKYARD_ROOTLESS_UID"):
        return SYSTEM_ROOT
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "dockyard")


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store root for an explicit value, ``$DOCKYARD_ROOT`` or the default; made absolute."""
    from pathlib import Path

    return Path(root_dir(root))


def root_dir(root: str | os.PathLike[str] | None = None) -> str:
    """``resolve_root`` as a string (without pathlib, which ``dockyard images`` does not import)."""
    if root is None or str(root) == "":
        root = os.environ.get("DOCKYARD_ROOT", "") or _default_root()
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


# -- registry settings: mirrors and insecure registries (read by Client for pull and push) -----------

DAEMON_JSON = "/etc/docker/daemon.json"


def config_file() -> Path | None:
    """dockyard's config file: ``$DOCKYARD_CONFIG``, else ``$XDG_CONFIG_HOME/dockyard/config.toml``
    (``~/.config/...``), else ``/etc/dockyard/config.toml``; None if none exists."""
    from pathlib import Path

    env = os.environ.get("DOCKYARD_CONFIG", "")
    if env:
        return Path(env)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    for candidate in (Path(config_home) / "dockyard" / "config.toml", Path("/etc/dockyard/config.toml")):
        if candidate.is_file():
            return candidate
    return None


def config_table(name: str, config_path: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """The ``[name]`` table of the config file; {} when there is no file or no such table."""
    from pathlib import Path

    path = Path(config_path) if config_path is not None else config_file()
    if path is None:
        return {}
    import tomllib

    from dockyard.errors import InvalidArgument

    try:
        doc = tomllib.loads(_read_text(path))
    except FileNotFoundError:
        if config_path is not None or os.environ.get("DOCKYARD_CONFIG"):
            raise InvalidArgument(f"config file {path} does not exist") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from None
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InvalidArgument(f"{path}: {name} must be a table ([{name}])")
    return table


def registry_options(config_path: str | os.PathLike[str] | None = None,
                     daemon_json: str | os.PathLike[str] | None = None) -> RegistryOptions:
    """Mirrors and insecure registries from the config file and Docker's ``daemon.json``.

    TOML keys: ``registry-mirrors`` (Docker Hub mirrors, as in daemon.json), ``insecure-registries``,
    and a ``[mirrors]`` table mapping any registry name to its mirror URLs. ``daemon_json`` defaults
    to ``$DOCKYARD_DAEMON_JSON`` or ``/etc/docker/daemon.json`` (an empty value skips it).
    """
    import json
    from pathlib import Path

    from dockyard.errors import InvalidArgument
    from dockyard.registry.client import RegistryOptions, canonical_host

    mirrors: dict[str, list[str]] = {}
    insecure: list[str] = []

    def merge(doc: dict[str, object], where: str) -> None:
        def strings(key: str, value: object) -> list[str]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"{where}: {key} must be a list of strings")
            return [str(v) for v in value]

        if "registry-mirrors" in doc:
            for url in strings("registry-mirrors", doc["registry-mirrors"]):
                mirrors.setdefault("docker.io", []).append(url.rstrip("/"))
        if "insecure-registries" in doc:
            insecure.extend(strings("insecure-registries", doc["insecure-registries"]))
        table = doc.get("mirrors", {})
        if not isinstance(table, dict):
            raise InvalidArgument(f"{where}: mirrors must be a table of registry = [urls]")
        for registry, urls in table.items():
            mirrors.setdefault(canonical_host(str(registry)), []).extend(
                u.rstrip("/") for u in strings(f"mirrors.{registry}", urls))

    path = Path(config_path) if config_path is not None else config_file()
    if path is not None:
        import tomllib

        try:
            merge(tomllib.loads(_read_text(path)), str(path))
        except FileNotFoundError:
            if config_path is not None or os.environ.get("DOCKYARD_CONFIG"):
                raise InvalidArgument(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"{path}: invalid TOML: {exc}") from None
    if daemon_json is None:
        daemon_json = os.environ.get("DOCKYARD_DAEMON_JSON", str(DAEMON_JSON))
    if str(daemon_json):
        try:
            doc = json.loads(Path(daemon_json).read_text())
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"{daemon_json}: cannot read: {exc}") from None
        if isinstance(doc, dict):
            merge({k: v for k, v in doc.items() if k in ("registry-mirrors", "insecure-registries")},
                  str(daemon_json))
    return RegistryOptions(mirrors={k: tuple(dict.fromkeys(v)) for k, v in mirrors.items()},
                           insecure=tuple(dict.fromkeys(insecure)))


def _read_text(path: Path) -> str:
    """A config file's text; one-line InvalidArgument for a directory, an unreadable or non-UTF-8 file."""
    from dockyard.errors import InvalidArgument

    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InvalidArgument(f"config file {path} is a directory, not a file") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InvalidArgument(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InvalidArgument(f"{path}:{line}:{column}: not UTF-8 text (TOML must be UTF-8): byte "
                              f"0x{data[exc.start]:02x}") from None
