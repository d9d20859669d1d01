"""Keep base images current (layer L5): ``dockyard outdated`` and ``dockyard watch`` as a library.

    check_bases(client, options) -> list[BaseStatus]     # each external base: local vs registry digest
    base_refs(options) -> list[BaseRef]                  # FROM / COPY --from / RUN --mount images
    Watcher(client, options, interval, on_event)         # .step() one check, .run(stop_event) until told
    snapshot(context_dir, dockerfile) / changed(a, b)    # the context's stat picture

Nothing here prints: decisions are ``WatchEvent`` objects, build progress goes to progress sinks.
"""

from dockyard.tools.watch.bases import (
           BaseRef,
           BaseStatus,
           RemoteDigest,
           base_refs,
           check_bases,
           remote_digest,
)
from dockyard.tools.watch.context import changed, snapshot
from dockyard.tools.watch.watcher import StepResult, Watcher, WatchEvent

__all__ = ["BaseRef", "BaseStatus", "RemoteDigest", "StepResult", "WatchEvent", "Watcher", "base_refs",
           "changed", "check_bases", "remote_digest", "snapshot"]
