"""``--cache-to`` / ``--cache-from`` values in buildx's syntax: ``type=registry,ref=R[,mode=max]``..."""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

TYPES = ("registry", "local", "inline")
MODES = ("min", "max")
COMPRESSIONS = ("gzip", "zstd")


@record(frozen=True, slots=True)
class CacheSpec:
    """One cache source or destination. ``location`` is the registry reference (``registry``), the
    directory (``local``: ``dest`` for export, ``src`` for import) or the image (``inline`` import)."""

    type: str
    location: str = ""
    mode: str = "min"
    compression: str = "gzip"
    tag: str = "latest"        # the ref name inside an OCI layout (``local``)
    mounts: bool = False       # export ``RUN --mount=type=cache`` contents too
    mount_ids: tuple[str, ...] = ()   # only these cache ids (``mounts=pip;gomod``); () = all
    mount_max_size: int = 0    # a mount larger than this (bytes) is not exported; 0 = no cap
    attrs: dict[str, str] = field(default_factory=dict)


def parse_cache_spec(text: str, flag: str) -> CacheSpec:
    """Parse one flag value; a bare value is a registry reference (``--cache-from REF``, as buildx).

    Raises ``InvalidArgument`` naming the flag and the bad part."""
    value = text.strip()
    if not value:
        raise InvalidArgument(f'invalid argument "" for "{flag}" flag: empty value')
    if "=" not in value:
        return CacheSpec("inline" if flag == "--cache-to" and value == "inline" else "registry",
                         "" if value == "inline" else value)
    attrs: dict[str, str] = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {part!r} is not key=value')
        attrs[key] = val.strip()
    kind = attrs.pop("type", "registry")
    if kind not in TYPES:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: unknown cache type {kind!r} '
                              f"(use {', '.join(TYPES)})")
    mode = attrs.pop("mode", "min")
    if mode not in MODES:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: mode must be min or max')
    compression = attrs.pop("compression", "gzip")
    if compression not in COMPRESSIONS:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: '
                              "compression must be gzip or zstd")
    mounts_value = attrs.pop("mounts", "false")
    mounts = mounts_value.lower() not in ("", "0", "false", "no")
    mount_ids = () if mounts_value.lower() in ("1", "true", "yes", "0", "false", "no") else tuple(
        i for i in mounts_value.split(";") if i)
    cap_text = attrs.pop("mount-max-size", "")
    try:
        cap = _size(cap_text) if cap_text else 0
    except ValueError:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: '
                              f"mount-max-size {cap_text!r} is not a size (e.g. 512m, 2g)") from None
    tag = attrs.pop("tag", "latest") or "latest"
    if kind == "registry":
        location = attrs.pop("ref", "")
    elif kind == "local":
        location = attrs.pop("dest" if flag == "--cache-to" else "src", "")
    else:
        location = attrs.pop("ref", "")
    if not location and kind != "inline":
        need = "ref" if kind == "registry" else ("dest" if flag == "--cache-to" else "src")
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: {need}= is required')
    if kind == "inline" and flag == "--cache-from" and not location:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: ref= is required')
    return CacheSpec(kind, location, mode, compression, tag, mounts, mount_ids, cap, attrs)


def _size(text: str) -> int:
    """``512m``, ``2g``, ``1048576``: bytes (binary multiples, as BuildKit's cache sizes)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if value and value[-1] in units:
        return int(float(value[:-1]) * units[value[-1]])
    return int(value)
