"""Rebuild when a base image's tag moves in its registry or a file of the build context changes.

    watcher = Watcher(client, options, interval=300.0, on_event=print_line)
    watcher.step()              # one check; rebuilds if needed; returns a StepResult
    watcher.run(stop_event)     # until set: bases every ``interval``, the context every ``poll``

Every decision is reported as a :class:`WatchEvent` (one line of text each) to ``on_event``; build
progress goes where ``progress`` (a factory of sinks, one per build) or the client sends it. A failed
pull, build or push is reported and watching goes on; ``step`` never raises a ``DockyardError``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from dockyard.errors import DockyardError, NotFound
from dockyard.progress import ProgressSink
from dockyard.record import field, record, replace
from dockyard.tools.watch.bases import BaseStatus, check_bases, target_base
from dockyard.tools.watch.context import Signature, changed, snapshot

if TYPE_CHECKING:
    from dockyard.builder.options import BuildOptions, BuildResult
    from dockyard.client import Client
    from dockyard.registry.client import RegistryClient

__all__ = ["StepResult", "WatchEvent", "Watcher"]

EventKind = Literal["base-moved", "base-unreachable", "base-newer", "pulled", "pull-failed",
                    "context-changed", "initial-build", "built", "build-failed", "pushed", "push-failed",
                    "stopped"]


@record(frozen=True, slots=True)
class WatchEvent:
    """One thing the watcher noticed or did; ``message`` is the line to show."""

    kind: EventKind
    message: str
    ref: str = ""
    old: str = ""
    new: str = ""

    def __str__(self) -> str:
        return self.message


@record(slots=True)
class StepResult:
    """What one :meth:`Watcher.step` did."""

    moved: list[BaseStatus] = field(default_factory=list)
    changed_paths: list[str] = field(default_factory=list)
    built: bool = False
    result: BuildResult | None = None
    error: str = ""
    events: list[WatchEvent] = field(default_factory=list)


class SinkFactory(Protocol):
    def __call__(self) -> ProgressSink: ...


def short(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as event lines show digests."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest


class Watcher:
    """Keeps the image that ``options`` builds current; see the module docstring."""

    def __init__(self, client: Client, options: BuildOptions, interval: float = 300.0,
                 on_event: Callable[[WatchEvent], None] | None = None, *, debounce: float = 1.0,
                 poll: float = 1.0, progress: SinkFactory | None = None,
                 registry: RegistryClient | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.options = options
        self.interval = interval
        self.debounce = debounce
        self.poll = poll
        self.on_event = on_event
        self.progress = progress
        self.registry = registry  # for the base checks; None: a fresh client.registry_client() each time
        self._clock = clock
        self._picture: dict[str, Signature] | None = None
        self._unreachable: dict[str, str] = {}  # ref -> last reason reported (said once per change)
        self.builds = 0
        self.scan_seconds = 0.0  # how long the last look at the context took

    # -- one check ---------------------------------------------------------------------------------

    def step(self, *, bases: bool = True, context: bool = True) -> StepResult:
        """Check the bases (if ``bases``) and the context (if ``context``); pull and rebuild if needed.

        The first step takes the context's picture and builds when the image is not there yet
        (no tag given, or the first tag is missing); later steps compare against the last picture."""
        out = StepResult()
        first = self._picture is None
        if first or context:
            current = self._snapshot()
            if not first:
                assert self._picture is not None
                out.changed_paths = changed(self._picture, current)
                if out.changed_paths:
                    current = self._settle(current)
                    out.changed_paths = changed(self._picture, current)
            self._picture = current
        if bases:
            self._check_bases(out)
        reasons: list[str] = []
        if out.moved:
            reasons.append("base moved")
        if out.changed_paths:
            paths = out.changed_paths
            more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
            self._emit(out, WatchEvent("context-changed",
                                       f"context changed: {', '.join(paths[:3])}{more}; rebuilding"))
            reasons.append("context changed")
        if first and not reasons:
            if self._image_missing():
                self._emit(out, WatchEvent("initial-build", f"no image {self._name()} yet; building"))
                reasons.append("initial build")
            else:
                newer = self._built_on_older_base()
                if newer:
                    self._emit(out, WatchEvent("base-newer", f"{self._name()} is not built on the local "
                                               f"{newer}; rebuilding", ref=newer))
                    reasons.append("base newer")
        if reasons:
            self._build(out)
        return out

    def _snapshot(self) -> dict[str, Signature]:
        started = time.perf_counter()
        picture = snapshot(self.options.context_dir, self.options.dockerfile)
        self.scan_seconds = time.perf_counter() - started
        return picture

    def _settle(self, current: dict[str, Signature]) -> dict[str, Signature]:
        """Wait until the context stays the same for ``debounce`` seconds (an editor's save, a git
        checkout), at most ten times that in all, so a half-written change is not built."""
        if self.debounce <= 0:
            return current
        deadline = self._clock() + 10 * self.debounce
        quiet_since = self._clock()
        while self._clock() - quiet_since < self.debounce and self._clock() < deadline:
            time.sleep(min(0.2, self.debounce))
            again = self._snapshot()
            if again != current:
                current, quiet_since = again, self._clock()
        return current

    def _check_bases(self, out: StepResult) -> None:
        try:
            statuses = check_bases(self.client, self.options, registry=self.registry)
        except DockyardError as exc:  # a Dockerfile that does not parse: the build will say it too
            out.error = str(exc)
            self._emit(out, WatchEvent("build-failed", f"cannot read the Dockerfile: {exc}"))
            return
        for st in statuses:
            if st.status == "unreachable":
                if self._unreachable.get(st.ref) != st.reason:
                    self._unreachable[st.ref] = st.reason
                    self._emit(out, WatchEvent("base-unreachable", f"base {st.ref} unreachable: {st.reason}",
                                               ref=st.ref))
                continue
            self._unreachable.pop(st.ref, None)
            if st.status != "outdated":
                continue
            old = st.local_digest or st.local_image_id
            self._emit(out, WatchEvent(
                "base-moved", f"base {st.ref} moved: {short(old)} -> {short(st.remote_digest)}; rebuilding",
                ref=st.ref, old=old, new=st.remote_digest))
            try:
                pulled = self.client.pull(str(st.base.reference), platform=st.base.platform)
            except DockyardError as exc:
                self._emit(out, WatchEvent("pull-failed", f"pull {st.ref} failed: {exc}", ref=st.ref))
                continue
            self._emit(out, WatchEvent("pulled", f"pulled {st.ref}: {pulled.digest}", ref=st.ref,
                                       new=str(pulled.digest)))
            out.moved.append(st)

    # -- build and push ----------------------------------------------------------------------------

    def _name(self) -> str:
        return self.options.tags[0] if self.options.tags else "(untagged)"

    def _image_missing(self) -> bool:
        if not self.options.tags:
            return True
        try:
            self.client.resolve(self.options.tags[0])
        except NotFound:
            return True
        except DockyardError:
            return True
        return False

    def _built_on_older_base(self) -> str:
        """The target's base image if the existing image does not start with its layers (the base was
        pulled since, by hand or by another watcher), else ""."""
        try:
            base = target_base(self.options)
            if base is None:
                return ""
            have = self.client.image_record(self.options.tags[0]).diff_ids
            want = self.client.image_record(base).diff_ids
        except DockyardError:
            return ""  # no local base (the build pulls it) or an unreadable Dockerfile (the build says)
        return "" if have[:len(want)] == want else base

    def _build(self, out: StepResult) -> None:
        sink = self.progress() if self.progress is not None else None
        options = replace(self.options, push=False)
        if sink is not None:
            options = replace(options, progress=sink)
        started = self._clock()
        try:
            result = self.client.build(options)
        except DockyardError as exc:
            out.error = str(exc)
            self._emit(out, WatchEvent("build-failed", f"build failed: {exc}"))
            return
        finally:
            close = getattr(sink, "close", None)
            if callable(close):
                close()
            self.builds += 1
        out.built, out.result = True, result
        names = f" as {', '.join(result.tags)}" if result.tags else ""
        self._emit(out, WatchEvent(
            "built", f"built {result.image_id[:19]}{names} in {self._clock() - started:.1f}s "
            f"({result.cached}/{result.steps} steps cached)", new=result.image_id))
        if self.options.push:
            self._push(out, result)

    def _push(self, out: StepResult, result: BuildResult) -> None:
        images = list(getattr(result, "images", {}).values())
        for tag in self.options.tags:
            try:
                pushed = self.client.push_index(tag, images) if images else self.client.push(tag)
            except DockyardError as exc:
                out.error = str(exc)
                self._emit(out, WatchEvent("push-failed", f"push {tag} failed: {exc}", ref=tag))
                continue
            digest = str(getattr(pushed, "digest", ""))
            self._emit(out, WatchEvent("pushed", f"pushed {tag}: {digest}", ref=tag, new=digest))

    def _emit(self, out: StepResult, event: WatchEvent) -> None:
        out.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set: the context every ``poll`` seconds (longer for a context that
        takes long to look at), the bases every ``interval``.

        ``stop`` is looked at between steps, so a build under way is finished, never cut."""
        next_bases = self._clock()
        while not stop.is_set():
            due = self._clock() >= next_bases
            if due:
                next_bases = self._clock() + self.interval
            self.step(bases=due)
            # A big context costs ~4 us per file to stat (0.2 s of CPU for 50,000 files): look at
            # most a fifth of the time, whatever ``poll`` says.
            pause = max(self.poll, 4 * self.scan_seconds)
            if stop.wait(max(0.05, min(pause, next_bases - self._clock()))):
                break
        if self.on_event is not None:
            self.on_event(WatchEvent("stopped", "stopped watching"))
