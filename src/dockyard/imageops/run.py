"""Run a container from an image in the foreground (``docker run``), with Docker's rules for the
command line, environment, user, working directory and mounts.

The container's writable layer is a scratch overlay upper directory that goes away when the process
ends (dockyard keeps no stopped containers, so every run behaves like ``--rm``).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Sequence

from dockyard.dockerfile.mounts import MountSpec, parse_run_mount, parse_volume
from dockyard.errors import DockyardError, ExecutionError, InvalidArgument, NotFound
from dockyard.executor import Mount, ProcessSpec, RootfsSpec
from dockyard.executor.base import OnStart, open_executor
from dockyard.executor.isolation import choose as choose_isolation
from dockyard.executor.network import parse_publish, resolve_ports
from dockyard.executor.seccomp import DEFAULT as DEFAULT_SECCOMP
from dockyard.executor.seccomp import parse_profile
from dockyard.executor.spec import PortMapping, Rootfs, network_mode
from dockyard.imageops import Store
from dockyard.imageops.images import load_config, resolve
from dockyard.imageops.platforms import resolve_platform
from dockyard.imageops.unpack import unpack_layers
from dockyard.oci.config import ImageConfig
from dockyard.record import field, record
from dockyard.snapshot.copying import CopiedTree

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


INIT_TARGET = "/sbin/docker-init"  # where Docker puts its init in a container


@record(slots=True)
class RunOptions:
    """What ``docker run`` takes that dockyard supports. ``entrypoint=""`` clears the image's."""

    image: str
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str | None = None
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # --mount values
    network: str = "private"  # host, none, private (default and bridge mean private, as for docker run)
    publish: list[PortMapping] = field(default_factory=list)  # parse_publish, then resolve_ports
    hostname: str = ""
    tty: bool = False
    interactive: bool = False
    runtime: str = "builtin"
    console_size: tuple[int, int] | None = None  # (rows, columns) of a ``tty`` run's terminal
    security_opt: list[str] = field(default_factory=list)  # ``--security-opt`` values
    platform: str = ""  # one platform of a multi-platform tag (a foreign one runs under qemu)
    init: str = ""  # --init: the host's static init (tini), run as pid 1 in front of the command


def command_line(config: ImageConfig, opts: RunOptions) -> list[str]:
    """Entrypoint + command as Docker combines them (``--entrypoint`` also drops the image's CMD)."""
    run = config.config
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entrypoint = list(run.get("Entrypoint") or [])
        cmd = list(opts.command) if opts.command else list(run.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise ExecutionError("No command specified")
    return args


def environment(config: ImageConfig, extra: Sequence[str], hostname: str) -> list[str]:
    """The image's Env, then ``-e`` values (``KEY`` alone takes the caller's value, or is dropped)."""
    env: dict[str, str] = {}
    for item in config.config.get("Env") or [DEFAULT_PATH]:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH.partition("=")[2])
    env["HOSTNAME"] = hostname
    for item in extra:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
        else:
            env.pop(key, None)
    return [f"{k}={v}" for k, v in env.items()]


def run_mounts(volumes: Sequence[str], mounts: Sequence[str] = ()) -> list[Mount]:
    """The executor mounts for ``-v SRC:DST[:ro|rw]`` and ``--mount`` values, with the daemon's checks."""
    found = [(parse_volume(v), True) for v in volumes] + [(parse_run_mount(v), False) for v in mounts]
    return [_host_mount(spec, short) for spec, short in found]


def _host_mount(spec: MountSpec, short: bool) -> Mount:
    """One parsed mount checked against the host as dockerd does; ``short`` for ``-v`` (makes a missing
    source, as Docker does for the short form only)."""
    def bad(message: str) -> InvalidArgument:
        return InvalidArgument(f'invalid mount config for type "{spec.type}": {message}')

    if not spec.target.startswith("/"):
        raise bad(f"invalid mount path: '{spec.target}' mount path must be absolute")
    if spec.type == "tmpfs":
        if spec.source:
            raise bad("field Source must not be specified")
        if spec.readonly or (spec.mode is not None and spec.mode != 0o1777):
            raise bad("dockyard mounts a tmpfs writable with mode 1777 only")
        return Mount(target=spec.target, type="tmpfs", size=spec.size_limit)
    if spec.type != "bind":
        raise bad("named volumes are not supported (no daemon keeps them): use type=bind or type=tmpfs")
    if not spec.source:
        raise bad("field Source must not be empty")
    if not spec.source.startswith("/"):
        raise bad(f"invalid mount path: '{spec.source}' mount path must be absolute")
    if not os.path.exists(spec.source):
        if not short:
            raise bad(f"bind source path does not exist: {spec.source}")
        os.makedirs(spec.source, exist_ok=True)
    return Mount(target=spec.target, source=os.path.realpath(spec.source), readonly=spec.readonly)


def seccomp_setting(security_opt: Sequence[str]) -> str | None:
    """The ``ProcessSpec.seccomp`` value of ``--security-opt`` options: ``seccomp=unconfined`` (None),
    ``seccomp=PROFILE.json`` (the file's text, checked), else Docker's default profile.
    ``no-new-privileges`` is accepted: every dockyard container has it."""
    setting: str | None = DEFAULT_SECCOMP
    for opt in security_opt:
        key, sep, value = opt.partition("=")
        if key == "no-new-privileges" and value in ("", "true"):
            continue
        if key != "seccomp" or not sep or not value:
            raise InvalidArgument(f'invalid --security-opt: "{opt}" (dockyard supports seccomp=unconfined, '
                                  "seccomp=PROFILE.json and no-new-privileges)")
        if value == "unconfined":
            setting = None
            continue
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise InvalidArgument(f"opening seccomp profile ({value}) failed: {reason}") from None
        parse_profile(text, value)
        setting = text
    return setting


def run_image(store: Store, opts: RunOptions,
              pull: Callable[[str], str] | None = None) -> tuple[str, ImageConfig]:
    """The id and config of the image ``opts`` runs (of ``opts.platform``); pulls a missing one with
    ``pull`` when given."""
    try:
        image_id = str(resolve_platform(store, opts.image, opts.platform) if opts.platform
                       else resolve(store, opts.image))
    except NotFound as missing:
        if pull is None:
            raise
        try:
            image_id = pull(opts.image)
        except DockyardError as exc:
            if not opts.platform:
                raise
            raise NotFound(f"{missing}, and pulling it failed: {exc}") from exc
    return image_id, load_config(store, image_id)[0]


def container_spec(store: Store, opts: RunOptions,
                   pull: Callable[[str], str] | None = None) -> tuple[str, ImageConfig, ProcessSpec]:
    """The image id, its config and the process spec of ``opts`` (Docker's rules); pulls a missing
    image with ``pull`` when given."""
    image_id, config = run_image(store, opts, pull)
    args = command_line(config, opts)
    network = network_mode(opts.network)
    if opts.publish and network != "private":
        raise InvalidArgument(f"ports cannot be published with --network {opts.network}")
    hostname = opts.hostname or secrets.token_hex(6)
    run = config.config
    mounts = run_mounts(opts.volumes, opts.mounts)
    if opts.init:  # Docker's docker-init: bound read-only, pid 1 forwards signals and reaps orphans
        mounts.append(Mount(target=INIT_TARGET, source=opts.init, readonly=True))
        args = [INIT_TARGET, "--", *args]
    spec = ProcessSpec(
        args=args, env=environment(config, opts.env, hostname),
        cwd=opts.workdir or str(run.get("WorkingDir") or "/"),
        user=opts.user if opts.user is not None else str(run.get("User") or ""),
        hostname=hostname, network=network, publish=opts.publish,
        mounts=mounts, tty=opts.tty, console_size=opts.console_size,
        seccomp=seccomp_setting(opts.security_opt),
    )
    return image_id, config, spec


def run_container(store: Store, opts: RunOptions, *, stdin: int | None, stdout: int, stderr: int,
                  pull: Callable[[str], str] | None = None, on_start: OnStart | None = None) -> int:
    """Run ``opts.image`` and return the process's exit status (128+n when killed by signal n)."""
    image_id, config, spec = container_spec(store, opts, pull)
    with store.lease(ttl=7 * 24 * 3600.0) as lease:
        lease.add_image(image_id)
        lowers = unpack_layers(store, config.diff_ids, lease=lease)
        scratch = store.make_tmp("run")
        empty = scratch / "empty"
        empty.mkdir()
        try:
            # The kernel's overlayfs or (refused, rootless before 5.11) fuse-overlayfs, as builds do.
            choice = choose_isolation("namespaces", store.root / "exec")
            rootfs: Rootfs
            if choice.isolation == "chroot":
                # Neither can mount here (rootless): the copying snapshotter's copy of the layers is
                # the root, as in the builder's chroot fallback, while namespaces still isolate the
                # process. The run's changes go with the copy, as they go with a run's upper directory.
                rootfs = scratch / "rootfs"
                rootfs.mkdir()
                CopiedTree(rootfs).materialize(lowers)
            else:
                upper, work = scratch / "upper", scratch / "work"
                upper.mkdir()
                work.mkdir()
                rootfs = RootfsSpec(lowerdirs=list(reversed(lowers)) or [empty], upperdir=upper,
                                    workdir=work)
            executor = open_executor(store.root / "exec", opts.runtime, mounter=choice.mounter)
            try:
                return executor.run(spec, rootfs, stdout=stdout, stderr=stderr,
                                    stdin=stdin if opts.interactive else None, on_start=on_start)
            finally:
                executor.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["RunOptions", "command_line", "container_spec", "environment", "network_mode", "parse_publish",
           "resolve_ports", "run_container", "run_image", "run_mounts", "seccomp_setting"]
