"""dockyard's own advice beyond hadolint: DY1xx for the build cache, DY2xx for image size."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dockyard.dockerfile import PatternError, PatternMatcher, read_ignore_file
from dockyard.record import record
from dockyard.tools.lint.rules import Context, Hit, copy_parts
from dockyard.tools.lint.shell import Command
from dockyard.tools.lint.source import Instr, unquote


@record
class AdviceContext:
    """The lint context plus what advice may look at: the text and (optionally) the build context."""

    lint: Context
    text: str
    context_dir: Path | None


@record(frozen=True)
class Advice:
    """A registered advice rule."""

    code: str
    severity: str
    message: str
    check: Callable[[AdviceContext], Iterable[Hit]]


ADVICE: dict[str, Advice] = {}


def advice(
    code: str, severity: str, message: str
) -> Callable[[Callable[[AdviceContext], Iterable[Hit]]], Callable[[AdviceContext], Iterable[Hit]]]:
    """Register the decorated function as advice ``code``."""

    def register(fn: Callable[[AdviceContext], Iterable[Hit]]) -> Callable[[AdviceContext], Iterable[Hit]]:
        ADVICE[code] = Advice(code, severity, message, fn)
        return fn

    return register


def _copies_context(instr: Instr) -> bool:
    """COPY/ADD of the whole build context (``COPY . .``, ``ADD ./ /app``, ``COPY * ./``)."""
    if instr.kind not in ("COPY", "ADD") or instr.flag("from") is not None:
        return False
    return any(s in (".", "./", "*", "./*") for s in copy_parts(instr)[0])


def _installs_dependencies(cmd: Command) -> bool:
    name = cmd.name.rsplit("/", 1)[-1]
    pos = cmd.positionals(("-o", "-t", "-r", "--requirement", "-c", "--constraint"))
    sub = pos[0] if pos else ""
    if name in ("apt-get", "yum", "dnf", "microdnf", "zypper") and sub in ("install", "in"):
        return True
    if name == "apk" and sub == "add":
        return True
    if name.startswith("pip") and sub == "install" and cmd.has_flag("r", "requirement"):
        return True
    if name in ("npm", "yarn", "pnpm", "bundle", "composer", "poetry") and sub in ("install", "ci", "i", ""):
        return name != "npm" or sub != ""
    return name == "go" and pos[:2] == ["mod", "download"]


@advice(
    "DY101",
    "info",
    "COPY of the whole build context before installing dependencies: any change to any "
    "file re-runs the install. Copy the dependency manifests first, install, then copy the rest",
)
def _dy101(ctx: AdviceContext) -> Iterator[Hit]:
    for stage in ctx.lint.stages:
        copy_line = 0
        for instr in stage.instrs:
            if copy_line == 0 and _copies_context(instr):
                copy_line = instr.line
            elif copy_line and instr.kind == "RUN" and instr.posix_shell:  # noqa: SIM102
                if any(_installs_dependencies(c) for c in instr.script.commands):
                    yield copy_line, None
                    break


def _context_copy_line(ctx: AdviceContext) -> int:
    return next((i.line for i in ctx.lint.instrs if _copies_context(i)), 0)


def _ignore_patterns(context_dir: Path) -> list[str] | None:
    path = context_dir / ".dockerignore"
    try:
        return read_ignore_file(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


@advice(
    "DY102",
    "warning",
    "No .dockerignore in the build context: everything (VCS data, build output, "
    "secrets) is sent, hashed and copied; add a .dockerignore",
)
def _dy102(ctx: AdviceContext) -> Iterator[Hit]:
    if ctx.context_dir is None:
        return
    line = _context_copy_line(ctx)
    if line and _ignore_patterns(ctx.context_dir) is None:
        yield line, None


@advice(
    "DY103",
    "warning",
    "The build context's .git directory is copied into the image and busts the cache on "
    "every commit; add `.git` to .dockerignore",
)
def _dy103(ctx: AdviceContext) -> Iterator[Hit]:
    if ctx.context_dir is None or not (ctx.context_dir / ".git").exists():
        return
    line = _context_copy_line(ctx)
    if not line:
        return
    patterns = _ignore_patterns(ctx.context_dir) or []
    try:
        excluded = PatternMatcher(patterns).matches(".git")
    except PatternError:
        excluded = False
    if not excluded:
        yield line, None


def _downloads(cmd: Command) -> list[str]:
    """Files a wget/curl command writes (``-O file``, ``--output-document=file``, ``-o file``)."""
    if cmd.name == "wget":
        out = cmd.flag_value("O", "output-document")
    elif cmd.name == "curl":
        out = cmd.flag_value("o", "output")
    else:
        return []
    return [out] if out and out != "-" else []


def _resolve(path: str, workdir: str) -> str | None:
    path = unquote(path)
    if "$" in path or any(c in path for c in "*?["):
        return None
    if not path.startswith("/"):
        if not workdir:
            return None
        path = posixpath.join(workdir, path)
    return posixpath.normpath(path)


@advice(
    "DY201",
    "warning",
    "A file added in an earlier layer is deleted here: its bytes stay in the image. "
    "Delete it in the RUN that creates it, or use a multi-stage build",
)
def _dy201(ctx: AdviceContext) -> Iterator[Hit]:
    for stage in ctx.lint.stages:
        workdir = ""
        added: dict[str, int] = {}
        for instr in stage.instrs:
            if instr.kind == "WORKDIR" and instr.args:
                target = _resolve(instr.args[0], workdir or "/")
                workdir = target or ""
            elif instr.kind in ("COPY", "ADD") and instr.flag("from") is None:
                sources, dest = copy_parts(instr)
                for source in sources:
                    if source.startswith(("http://", "https://")) and instr.kind == "ADD":
                        source = source.rstrip("/").rsplit("/", 1)[-1]
                    if dest.endswith("/"):
                        target = _resolve(
                            posixpath.join(dest, posixpath.basename(source.rstrip("/"))), workdir
                        )
                    elif len(sources) == 1:
                        target = _resolve(dest, workdir)
                    else:
                        target = None
                    if target:
                        added[target] = instr.line
            elif instr.kind == "RUN" and instr.posix_shell:
                removed = [
                    t
                    for c in instr.script.find("rm")
                    for a in c.positionals()
                    if (t := _resolve(a, workdir)) is not None and t in added
                ]
                if removed:
                    yield (
                        instr.line,
                        (
                            f"`{removed[0]}` (added at line {added[removed[0]]}) is deleted here: its "
                            "bytes stay in the earlier layer. Delete it in the same RUN, or use a "
                            "multi-stage build"
                        ),
                    )
                for t in removed:
                    added.pop(t, None)
                for cmd in instr.script.commands:
                    for out in _downloads(cmd):
                        target = _resolve(out, workdir)
                        if target:
                            added[target] = instr.line
                removed_now = {
                    t
                    for c in instr.script.find("rm")
                    for a in c.positionals()
                    if (t := _resolve(a, workdir)) is not None
                }
                for t in removed_now:
                    added.pop(t, None)


@advice(
    "DY202",
    "info",
    "npm's cache (~/.npm) stays in the layer: add `&& npm cache clean --force`, or use "
    "`RUN --mount=type=cache,target=/root/.npm`",
)
def _dy202(ctx: AdviceContext) -> Iterator[Hit]:
    for _, instr, script in ctx.lint.runs():
        if instr.cache_mounted("/root/.npm"):
            continue
        cmds = script.commands
        last = max(
            (
                i
                for i, c in enumerate(cmds)
                if c.name == "npm" and c.positionals()[:1] in (["install"], ["ci"], ["i"])
            ),
            default=-1,
        )
        if last < 0:
            continue
        later = cmds[last + 1 :]
        cleaned = any(c.name == "npm" and c.positionals()[:2] == ["cache", "clean"] for c in later)
        if not cleaned and not any(c.name == "rm" and any(".npm" in a for a in c.args) for c in later):
            yield instr.line, None


MERGE_THRESHOLD = 4


@advice(
    "DY203", "info", "Consecutive RUN instructions each add a layer: merge them with `&&` (or use a heredoc)"
)
def _dy203(ctx: AdviceContext) -> Iterator[Hit]:
    run: list[Instr] = []

    def flush() -> Iterator[Hit]:
        if len(run) >= MERGE_THRESHOLD:
            yield (
                run[0].line,
                (
                    f"{len(run)} consecutive RUN instructions (lines {run[0].line}-{run[-1].line}) make "
                    f"{len(run)} layers: merge them with `&&` (or use a heredoc)"
                ),
            )

    for instr in ctx.lint.instrs:
        if instr.kind == "RUN" and (not run or sorted(run[-1].flags) == sorted(instr.flags)):
            run.append(instr)
            continue
        yield from flush()
        run = [instr] if instr.kind == "RUN" else []
    yield from flush()
