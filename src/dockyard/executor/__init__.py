"""Run a process in a container: the built-in namespace executor and an optional runc backend.

Layer L3. Two consumers: the build engine (RUN steps on an overlay root whose upper directory becomes
the layer) and ``dockyard run``.

- :class:`ProcessSpec` (argv, env, cwd, USER, hostname, network ``host``/``none``/``private`` with
  published ports, :class:`Mount` list),
  :class:`RootfsSpec` (lower directories base first, upper, work) or a plain ``Path`` rootfs.
- :class:`Executor` protocol: ``run(spec, rootfs, *, stdout, stderr, stdin, timeout, cancel, on_start)
  -> int``; ``stdout``/``stderr`` are a callback for chunks, a file descriptor to hand over, or ``None``;
  ``on_start`` gets a :class:`RunHandle` whose ``signal(n)`` forwards signals (``dockyard run``);
  :class:`LineBuffer` turns chunks into lines for progress events.
- :class:`NamespaceExecutor` (built in; forks from a small zygote helper) and :class:`RuncExecutor`
  (an OCI bundle run by ``runc run``) give the same container: /proc, a minimal /dev, read-only /sys,
  generated /etc/hosts, /etc/resolv.conf and /etc/hostname, Docker's default capabilities, no_new_privs,
  Docker's masked and read-only kernel paths and its default seccomp profile (``ProcessSpec.seccomp``:
  ``"default"``, a profile in Docker's JSON format, or None; see :mod:`dockyard.executor.seccomp`).
- :func:`resolve_user`: Docker's USER rules against the image's /etc/passwd and /etc/group.
- :func:`cleanup_stale`: removes what runs of dead processes left under a state directory (call it
  at start-up, before the first run).

A RUN step, for example (the caller turns shell form into argv with the image's SHELL)::

    with NamespaceExecutor(state_dir) as ex:
        code = ex.run(ProcessSpec(args=["/bin/sh", "-c", "apk add curl"], env=config_env,
                                  cwd="/app", user="app", mounts=[Mount("/root/.cache", source=cache)]),
                      RootfsSpec(layer_dirs, upper, work), stdout=LineBuffer(emit), timeout=None)

The process runs as pid 1 of its pid namespace: when it ends, every process it left is killed. With the
built-in executor its mounts (rootfs, /proc, /dev, binds) live only in its own mount namespace, never
on the host, and go with it (dropped on a background thread just after the run; the next run waits for
that); runc needs host mounts under ``state_dir/runs``, removed after each run.
:func:`open_executor` picks a backend by name (``--runtime``); ``tty=True`` runs are built-in only.
A ``private`` network (:mod:`dockyard.executor.network`) is a namespace served by ``pasta``: one per
executor, shared by its runs (a build's RUN steps), and one per run that publishes ports.
With ``isolation="chroot"`` it gives the :class:`~dockyard.executor.chroot.ChrootExecutor` instead (no
namespaces, no mounts: a copy of the layers and a chroot, for unprivileged containers);
:mod:`~dockyard.executor.isolation` resolves ``auto``. Rootless mode is
:func:`~dockyard.executor.rootless.enter_user_namespace`, called by the CLI for a non-root user.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing is not imported: the zygote, which imports this package, starts faster

if TYPE_CHECKING:
    from dockyard.executor.base import (
        Executor,
        LineBuffer,
        OnStart,
        Output,
        OutputCallback,
        RunHandle,
        open_executor,
    )
    from dockyard.executor.cleanup import cleanup_stale
    from dockyard.executor.namespace import NamespaceExecutor
    from dockyard.executor.runc import RuncExecutor
    from dockyard.executor.spec import Mount, ProcessSpec, RootfsSpec
    from dockyard.executor.user import ExecUser, resolve_user

# Imported on first use: the zygote imports this package and should stay small (no subprocess,
# threading, ...), since every container process is forked from it.
_EXPORTS = {
    "Executor": "base", "LineBuffer": "base", "OnStart": "base", "Output": "base", "OutputCallback": "base",
    "RunHandle": "base", "cleanup_stale": "cleanup", "open_executor": "base",
    "NamespaceExecutor": "namespace", "RuncExecutor": "runc", "Mount": "spec", "ProcessSpec": "spec",
    "RootfsSpec": "spec", "ExecUser": "user", "resolve_user": "user",
}

__all__ = [
    "ExecUser",
    "Executor",
    "LineBuffer",
    "Mount",
    "NamespaceExecutor",
    "OnStart",
    "Output",
    "OutputCallback",
    "ProcessSpec",
    "RootfsSpec",
    "RunHandle",
    "RuncExecutor",
    "cleanup_stale",
    "open_executor",
    "resolve_user",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dockyard.executor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dockyard.executor.{module}"), name)
