"""Containers that outlive a command, without a daemon (layer L4).

Each container is a directory under ``<store>/containers/<id>/``: ``config.json`` (what ``create`` was
given, with Docker's inspect keys), ``state.json`` (Docker's ``State`` object, the restart count and the
monitor that owns the process), ``<id>-json.log`` (Docker's json-file log), ``rootfs/`` (the writable
layer, kept across restarts) and ``lock`` (serialises the CLIs acting on the container).

A per-container *monitor* (:mod:`dockyard.containers.monitor`, a detached process, not a daemon) runs
the first process through the built-in executor, writes the log, records the exit code and applies the
restart policy. What the state file claims is checked against the monitor being alive: a dead
monitor's container reads as exited (code 255, as Docker after an unclean daemon stop).

- :mod:`~dockyard.containers.store`: records on disk, ids and names, the locks.
- :mod:`~dockyard.containers.lifecycle`: create, start, stop, kill, restart, rm, rename, wait, prune.
- :mod:`~dockyard.containers.logs`: the json-file log, written and read (``logs`` filters).
"""
