"""The Dockerfile front end (layer L1): parse, type, expand, and match ``.dockerignore`` -- as BuildKit.

Pure Python, no file or network access: callers hand in text.

Parsing (:mod:`.parser`)
    ``parse(text, filename="Dockerfile") -> ParseResult``: ``.children`` are :class:`Node` objects
    (``value`` = instruction as written, ``flags``, ``values()``, ``original``, ``start_line``,
    ``end_line``, ``heredocs``, ``is_json``), plus ``.directives``, ``.warnings`` (empty continuation
    lines), ``.escape_token``; ``.dump()`` is BuildKit's test dump, ``Node.to_json()`` the JSON form.
    ``detect_syntax(text)`` / ``parse_directive(key, text)`` read ``# syntax=`` / ``# check=``.

Typed instructions (:mod:`.instructions`)
    ``parse_instruction(node) -> Instruction`` (``RunInstruction`` with ``MountSpec`` mounts, network,
    security, devices; ``CopyInstruction``/``AddInstruction`` with ``sources``, ``contents`` (heredoc
    files), ``dest``, ``from_``, ``chown``, ``chmod``, ``link``, ``parents``, ``excludes``, ``checksum``,
    ``keep_git_dir``, ``unpack``; ``HealthcheckInstruction``, ``EnvInstruction``, ``ArgInstruction``...).
    Each keeps ``original`` and its line range. ``instr.expand(fn)`` returns a copy with the words
    BuildKit expands passed through ``fn``. Helpers: ``parse_mount``, ``parse_port_spec`` (EXPOSE
    ranges/protocols), ``parse_signal`` (STOPSIGNAL).

Stages and scope (:mod:`.stages`)
    ``parse_stages(result, build_args, target_platform=, build_platform=) -> BuildPlan`` with
    ``.stages`` (``Stage``: name, base_name and platform after global-ARG expansion, base_stage when
    FROM names an earlier stage, ``deps`` = earlier stages it reads (base, ``COPY --from``, RUN
    mounts), instructions), ``needed_stages(plan, target)``, ``.meta_args``, ``.global_args``,
    ``.unused_build_args`` / ``.unused_args_warning()``. For the build, ``plan.stage_env(stage,
    image_env)`` gives a ``StageEnv``: ``apply(instr)`` expands it in order (tracking ARG and ENV),
    ``run_env()`` is what RUN sees, ``history_args()`` what goes into history (no proxy args).

Word expansion (:mod:`.shell`)
    ``ShellLex(escape).process_word(word, env)`` / ``process_words`` / ``process_word_with_matches``;
    ``expand(word, env)`` and ``expand_words(word, env)`` as shortcuts.

``.dockerignore`` (:mod:`.dockerignore`)
    ``read_ignore_file(text) -> list[str]``, ``PatternMatcher(patterns).matches(path)``,
    ``pick_ignore_file(dockerfile, names)`` (``<Dockerfile>.dockerignore`` wins over ``.dockerignore``).

Every error is :class:`dockyard.errors.DockerfileError` (file, line, column; "did you mean" for a
misspelt instruction or flag), except bad ignore patterns (``PatternError``, an InvalidArgument).
"""

from __future__ import annotations

from dockyard.dockerfile.dockerignore import PatternError, PatternMatcher, pick_ignore_file, read_ignore_file
from dockyard.dockerfile.instructions import (
    AddInstruction,
    ArgInstruction,
    ArgSpec,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    Instruction,
    KeyValuePair,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    PortSpec,
    RunInstruction,
    ShellInlineFile,
    ShellInstruction,
    SourceContent,
    StopSignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
    parse_instruction,
    parse_port_spec,
    parse_signal,
)
from dockyard.dockerfile.mounts import DeviceSpec, MountSpec, parse_mount
from dockyard.dockerfile.parser import (
    Heredoc,
    Node,
    ParseResult,
    ParseWarning,
    detect_syntax,
    parse,
    parse_directive,
)
from dockyard.dockerfile.shell import ShellLex, expand, expand_words
from dockyard.dockerfile.stages import BuildPlan, Platform, Stage, StageEnv, needed_stages, parse_stages

__all__ = [
    "AddInstruction", "ArgInstruction", "ArgSpec", "BuildPlan", "CmdInstruction", "CopyInstruction",
    "DeviceSpec", "EntrypointInstruction", "EnvInstruction", "ExposeInstruction", "FromInstruction",
    "HealthcheckInstruction", "Heredoc", "Instruction", "KeyValuePair", "LabelInstruction",
    "MaintainerInstruction", "MountSpec", "Node", "OnbuildInstruction", "ParseResult", "ParseWarning",
    "PatternError",
    "PatternMatcher", "Platform", "PortSpec", "RunInstruction", "ShellInlineFile", "ShellInstruction",
    "ShellLex", "SourceContent", "Stage", "StageEnv", "StopSignalInstruction", "UserInstruction",
    "VolumeInstruction", "WorkdirInstruction", "detect_syntax", "expand", "expand_words", "needed_stages",
    "parse",
    "parse_directive", "parse_instruction", "parse_mount", "parse_port_spec", "parse_signal", "parse_stages",
    "pick_ignore_file", "read_ignore_file",
]
