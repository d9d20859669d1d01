"""What a build starts from: its Dockerfile, read and parsed into stages, and its .dockerignore rules."""

from __future__ import annotations

import os

from dockyard.builder.context import ExcludeFn
from dockyard.builder.options import BuildOptions
from dockyard.dockerfile import (
    AddInstruction,
    BuildPlan,
    CopyInstruction,
    PatternMatcher,
    Platform,
    parse,
    parse_stages,
    pick_ignore_file,
    read_ignore_file,
)
from dockyard.errors import BuildError
from dockyard.record import record


@record(frozen=True, slots=True)
class Definition:
    """The parsed Dockerfile (``path`` as given, for titles and the ignore file), its warnings, and
    the context's ignore rules (None: nothing is excluded)."""

    plan: BuildPlan
    path: str
    warnings: tuple[str, ...]
    ignore: ExcludeFn | None


def load_definition(options: BuildOptions) -> Definition:
    if not os.path.isdir(options.context_dir):
        raise BuildError(f'unable to prepare context: path "{options.context_dir}" not found')
    text, path = _dockerfile(options)
    result = parse(text, os.path.basename(path))
    warnings = [str(w) for w in result.warnings]
    target = Platform.parse(options.platform) if options.platform else None
    plan = parse_stages(result, options.build_args, target_platform=target)
    if plan.unused_args_warning():
        warnings.append(str(plan.unused_args_warning()))
    return Definition(plan, path, tuple(warnings), ignore_rules(options.context_dir, path))


def _dockerfile(opts: BuildOptions) -> tuple[str, str]:
    if opts.dockerfile_text is not None:
        return opts.dockerfile_text, opts.dockerfile or "Dockerfile"
    path = opts.dockerfile or os.path.join(opts.context_dir, "Dockerfile")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read(), path
    except FileNotFoundError:
        raise BuildError(f"failed to read dockerfile: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise BuildError(f"failed to read dockerfile: read {path}: is a directory") from None


def ignore_rules(ctx: str, dockerfile: str) -> ExcludeFn | None:
    """The context's exclusions: ``<Dockerfile>.dockerignore`` beside the Dockerfile, else the
    context's ``.dockerignore`` (as BuildKit picks them)."""
    try:
        names = os.listdir(ctx)
    except FileNotFoundError:
        raise BuildError(f'unable to prepare context: path "{ctx}" not found') from None
    candidates = [os.path.basename(dockerfile) + ".dockerignore", ".dockerignore"]
    picked = None
    dockerfile_dir = os.path.dirname(os.path.abspath(dockerfile))
    if os.path.exists(os.path.join(dockerfile_dir, candidates[0])):
        picked = os.path.join(dockerfile_dir, candidates[0])
    else:
        chosen = pick_ignore_file(os.path.basename(dockerfile), names)
        if chosen:
            picked = os.path.join(ctx, chosen)
    if picked is None:
        return None
    with open(picked, encoding="utf-8", errors="replace") as f:
        patterns = read_ignore_file(f.read())
    if not patterns:
        return None
    matcher = PatternMatcher(patterns)
    exceptions = [p.cleaned + "/" for p in matcher.patterns if p.exclusion]

    def excluded(rel: str, is_dir: bool) -> bool:
        if not matcher.matches(rel):
            return False
        # As Docker 20.10's context walker: an excluded directory is still walked (and kept) only
        # when a "!" exception starts with its path; otherwise it goes with all inside it.
        return not (is_dir and any(e.startswith(rel + "/") for e in exceptions))

    return excluded


def is_url(src: str) -> bool:
    """Whether an ADD source is fetched over HTTP(S) (not read from the context)."""
    return src.startswith(("http://", "https://"))


def context_patterns(instr: object) -> list[str] | None:
    """The context sources whose checksum a COPY or ADD step's plan computes, when the Dockerfile
    gives them as they are (no variable, quote or escape to expand, no ``--from``); else None."""
    if not isinstance(instr, CopyInstruction | AddInstruction):
        return None
    if isinstance(instr, CopyInstruction) and instr.from_:
        return None
    local = [s for s in instr.sources if not is_url(s)]
    if not local or any(c in s for s in local for c in "$\\'\""):
        return None
    return local
