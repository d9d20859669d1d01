"""BuildKit's build checks (``docker build --check``): the same rule names, messages and directives.

``build_checks(text)`` returns :class:`CheckResult`: the warnings as :class:`Finding` objects (code =
the rule name, severity ``warning``) and the ``# check=`` settings in force (``skip=``, ``error=``,
``experimental=``), file-wide or in the comments just above an instruction. ``base_env`` tells the
environment of an external base image when it is known (``dockyard build --check`` reads it from the
local store); UndefinedVar is only judged in stages whose whole environment is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from dockyard.dockerfile import (
    ArgInstruction,
    EnvInstruction,
    Instruction,
    LabelInstruction,
    Node,
    ParseResult,
    PatternMatcher,
    Platform,
    ShellLex,
    parse,
    parse_instruction,
    pick_ignore_file,
    read_ignore_file,
)
from dockyard.dockerfile.stages import PLATFORM_ARGS
from dockyard.dockerfile.suggest import search
from dockyard.errors import DockerfileError, DockyardError, InvalidArgument
from dockyard.oci import reference
from dockyard.record import field, record
from dockyard.tools.lint.model import Finding

_URL = "https://docs.docker.com/go/dockerfile/rule/"


@record(frozen=True)
class Check:
    """One build check: its name, BuildKit's description, and whether it runs only when asked."""

    name: str
    description: str
    experimental: bool = False

    @property
    def url(self) -> str:
        return _URL + re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", self.name).lower() + "/"


CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check("StageNameCasing", "Stage names should be lowercase"),
        Check("FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword"),
        Check("NoEmptyContinuation", "Empty continuation lines will become errors in a future release"),
        Check("ConsistentInstructionCasing",
              "All commands within the Dockerfile should use the same casing (either upper or lower)"),
        Check("DuplicateStageName", "Stage names should be unique"),
        Check("ReservedStageName", "Reserved words should not be used as stage names"),
        Check("JSONArgsRecommended",
              "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS "
              "signals"),
        Check("MaintainerDeprecated",
              "The MAINTAINER instruction is deprecated, use a label instead to define an image author"),
        Check("UndefinedArgInFrom", "FROM command must use declared ARGs"),
        Check("WorkdirRelativePath", "Relative workdir without an absolute workdir declared within the build "
              "can have unexpected results if the base image changes"),
        Check("UndefinedVar", "Variables should be defined before their use"),
        Check("MultipleInstructionsDisallowed",
              "Multiple instructions of the same type should not be used in the same stage"),
        Check("LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used"),
        Check("RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is "
              "redundant as this is the default behavior"),
        Check("SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands"),
        Check("InvalidDefaultArgInFrom",
              "Default value for global ARG results in an empty or invalid base image name"),
        Check("FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value"),
        Check("CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore"),
        Check("InvalidDefinitionDescription",
              "Comment for build stage or argument should follow the format: "
              "`# <arg/stage name> <description>`. If this is not intended to be a description comment, "
              "add an empty line or comment between the "
              "instruction and the comment.", experimental=True),
        Check("ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase"),
        Check("ExposeInvalidFormat", "IP address and host-port mapping should not be used in EXPOSE "
              "instruction. This will become an error in a future release"),
    )
}


@record
class CheckConfig:
    """The ``# check=`` settings: rules skipped (or all), experimental rules enabled, error on warnings."""

    skip: set[str] = field(default_factory=set)
    skip_all: bool = False
    experimental: set[str] = field(default_factory=set)
    experimental_all: bool = False
    error: bool = False

    def runs(self, name: str) -> bool:
        if CHECKS[name].experimental:
            return self.experimental_all or name in self.experimental
        return not (self.skip_all or name in self.skip)

    def merged(self, other: CheckConfig) -> CheckConfig:
        """These settings with ``other``'s on top (as BuildKit merges a comment's into the file's)."""
        return CheckConfig(
            self.skip | other.skip, self.skip_all or other.skip_all, self.experimental | other.experimental,
            self.experimental_all or other.experimental_all, self.error or other.error,
        )


def parse_check_options(value: str) -> CheckConfig:
    """``skip=A,B;error=true;experimental=all`` -> :class:`CheckConfig` (errors worded as BuildKit's)."""
    cfg = CheckConfig()
    value = value.strip()
    if not value:
        return cfg
    for part in value.split(";", 2):
        key, sep, val = part.partition("=")
        if not sep:
            raise InvalidArgument(f'invalid check option "{part}"')
        key, val = key.strip(), val.strip()
        if key in ("skip", "experimental"):
            names = {n.strip() for n in val.split(",")}
            if key == "skip":
                cfg.skip_all, cfg.skip = (True, set()) if val == "all" else (False, names)
            else:
                cfg.experimental_all, cfg.experimental = (True, set()) if val == "all" else (False, names)
        elif key == "error":
            if val.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise InvalidArgument(f'failed to parse check option "{part}": invalid syntax')
            cfg.error = val.lower() in ("1", "t", "true")
        else:
            raise InvalidArgument(f'invalid check option "{key}"')
    return cfg


@record
class CheckResult:
    """The warnings (sorted by line) and the file's ``# check=`` settings."""

    findings: list[Finding]
    config: CheckConfig


_SECRET = re.compile(
    r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)"
)
_NOT_SECRET = re.compile(r"(?i)(?:_|^)(?:public|file|version)(?:_|$)")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_LEX = ShellLex()
_ABSOLUTE = re.compile(r"^([A-Za-z]:)?[\\/]")


@record
class _Stage:
    name: str
    env: dict[str, str]
    env_known: bool  # False: an external base image whose environment nobody told us
    shell_set: bool = False
    workdir_set: bool = False
    used_once: dict[str, int] = field(default_factory=dict)  # CMD/ENTRYPOINT/HEALTHCHECK -> line


class _Checker:
    def __init__(self, result: ParseResult, config: CheckConfig, filename: str,
                 ignore: PatternMatcher | None, base_env: Callable[[str], list[str] | None] | None) -> None:
        self.result = result
        self.config = config
        self.filename = filename
        self.ignore = ignore
        self.base_env = base_env
        self.out: list[Finding] = []
        self.local = config  # the settings for the instruction being checked

    def warn(self, name: str, line: int, message: str) -> None:
        if self.local.runs(name):
            self.out.append(Finding(line, name, "warning", message, 1, self.filename))

    def for_node(self, node: Node) -> None:
        self.local = self.config
        for comment in node.prev_comment:
            key, sep, value = comment.strip().partition("=")
            if sep and key.strip().lower() == "check":
                try:
                    self.local = self.config.merged(parse_check_options(value.split(" ", 1)[0]))
                except InvalidArgument:
                    pass  # as BuildKit: a bad comment leaves the settings as they were
                break

    def run(self) -> None:
        for warning in self.result.warnings:
            if "continuation" in warning.url:
                self.warn("NoEmptyContinuation", warning.line, "Empty continuation line")
        nodes = self.result.children
        self._casing(nodes)
        global_args: dict[str, str] = {}
        declared_global: set[str] = set()
        stages: list[_Stage] = []
        by_name: dict[str, _Stage] = {}
        stage: _Stage | None = None
        for node in nodes:
            self.for_node(node)
            kind = node.value.lower()
            try:
                typed: Instruction | None = parse_instruction(node, self.filename)
            except DockyardError:
                typed = None
            if kind == "from":
                stage = self._from(node, global_args, declared_global, by_name, stages)
                continue
            if stage is None:
                if kind == "arg" and isinstance(typed, ArgInstruction):
                    self._description(node, "ARG", [spec.key for spec in typed.args])
                    for spec in typed.args:
                        declared_global.add(spec.key)
                        self._secret("ARG", spec.key, node.start_line)
                        if spec.value is not None:
                            global_args[spec.key] = self._expand(spec.value, global_args, set())[0]
                continue
            self._instruction(node, kind, typed, stage, global_args)
        self.local = self.config

    def _casing(self, nodes: list[Node]) -> None:
        words = [n.value for n in nodes]
        lower = sum(1 for w in words if w == w.lower())
        upper = sum(1 for w in words if w == w.upper() and w != w.lower())
        majority_lower = lower > upper
        for node in nodes:
            self.for_node(node)
            word = node.value
            if majority_lower and word.lower() != word:
                want = "lowercase"
            elif not majority_lower and word.upper() != word:
                want = "uppercase"
            else:
                continue
            self.warn("ConsistentInstructionCasing", node.start_line,
                      f"Command '{word}' should match the case of the command majority ({want})")

    def _from(self, node: Node, global_args: dict[str, str], declared: set[str],
              by_name: dict[str, _Stage], stages: list[_Stage]) -> _Stage:
        words = node.values()
        line = node.start_line
        base = words[0] if words else ""
        name = words[2] if len(words) == 3 and words[1].lower() == "as" else ""
        if name and name != name.lower():
            self.warn("StageNameCasing", line, f"Stage name '{name}' should be lowercase")
        keyword = node.value
        if len(words) == 3 and keyword in (keyword.lower(), keyword.upper()):
            wanted = words[1].lower() if keyword == keyword.lower() else words[1].upper()
            if words[1] != wanted:
                self.warn("FromAsCasing", line, f"'{words[1]}' and '{keyword}' keywords' casing do not match")
        if name:
            self._description(node, "FROM", [name.lower()])
        name = name.lower()
        builtins = set(PLATFORM_ARGS)
        known_keys = declared | builtins
        args_env = {**dict.fromkeys(PLATFORM_ARGS, ""), **_platform_defaults(), **global_args}
        resolved, unmatched = self._expand(base, args_env, set())
        self._undefined_from(unmatched, known_keys, declared, line)
        # as BuildKit: the base name with the global ARGs' defaults only must be an image reference
        only_defaults, _ = self._expand(base, {**_platform_defaults(), **global_args}, set())
        if not _valid_reference(only_defaults):
            self.warn("InvalidDefaultArgInFrom", line,
                      f"Default value for ARG {base} results in empty or invalid base image name")
        platform = next((f.partition("=")[2] for f in node.flags if f.lower().startswith("--platform=")), "")
        if platform:
            presult = _LEX.process_word_with_matches(platform, args_env)
            self._undefined_from(presult.unmatched - set(args_env), known_keys, declared, line)
            if presult.matched == {"TARGETPLATFORM"} and not presult.unmatched:
                self.warn("RedundantTargetPlatform", line, "Setting platform to predefined "
                          f"{platform} in FROM is redundant as this is the default behavior")
            if not presult.matched and not presult.unmatched:
                try:
                    plat = Platform.parse(presult.result)
                except DockerfileError:
                    plat = None
                if plat is not None and plat.os not in name and plat.architecture not in name:
                    self.warn("FromPlatformFlagConstDisallowed", line,
                              f'FROM --platform flag should not use constant value "{presult.result}"')
        if name:
            if name in ("context", "scratch"):
                self.warn("ReservedStageName", line,
                          f'Stage name should not use the same name as reserved stage "{name}"')
            if name in by_name:
                self.warn("DuplicateStageName", line,
                          f'Duplicate stage name "{name}", stage names should be unique')
        parent = by_name.get(resolved.lower())
        if parent is not None:
            stage = _Stage(name, dict(parent.env), parent.env_known, parent.shell_set, parent.workdir_set)
        elif resolved.lower() == "scratch":
            stage = _Stage(name, {"PATH": _DEFAULT_PATH}, True)
        else:
            env_list = self.base_env(resolved) if self.base_env else None
            env = dict(item.partition("=")[::2] for item in env_list or [])
            env.setdefault("PATH", _DEFAULT_PATH)
            stage = _Stage(name, env, env_list is not None)
        if name and name not in by_name:
            by_name[name] = stage
        stages.append(stage)
        return stage

    def _description(self, node: Node, instruction: str, keys: list[str]) -> None:
        """InvalidDefinitionDescription: a comment just above a stage or ARG names what it describes."""
        if not node.prev_comment or not keys or node.prev_comment[-1].split(" ")[0] in keys:
            return
        example = keys[0] if len(keys) == 1 else "<arg_key>"
        self.warn("InvalidDefinitionDescription", node.start_line,
                  f"Comment for {instruction} should follow the format: `# {example} <description>`")

    def _undefined_from(
        self, unmatched: Iterable[str], known: set[str], declared: set[str], line: int
    ) -> None:
        for arg in sorted(unmatched):
            if arg in known:
                continue
            hint = search(arg, sorted(declared), case_sensitive=True)
            self.warn("UndefinedArgInFrom", line,
                      f"FROM argument '{arg}' is not declared" + (f" (did you mean {hint}?)" if hint else ""))

    def _expand(self, word: str, env: dict[str, str], unmatched: set[str]) -> tuple[str, set[str]]:
        try:
            found = _LEX.process_word_with_matches(word, env)
        except DockerfileError:
            return word, unmatched
        unmatched |= found.unmatched
        return found.result, unmatched

    def _secret(self, kind: str, key: str, line: int) -> None:
        if _SECRET.search(key) and not _NOT_SECRET.search(key):
            self.warn("SecretsUsedInArgOrEnv", line,
                      f'Do not use ARG or ENV instructions for sensitive data ({kind} "{key}")')

    def _instruction(self, node: Node, kind: str, typed: Instruction | None, stage: _Stage,
                     global_args: dict[str, str]) -> None:
        line = node.start_line
        word = node.value
        if kind == "maintainer":
            self.warn("MaintainerDeprecated", line,
                      "Maintainer instruction is deprecated in favor of using label")
        elif kind in ("cmd", "entrypoint", "healthcheck"):
            if kind in stage.used_once:
                # at the earlier one, which is the one that does not take effect
                self.warn("MultipleInstructionsDisallowed", stage.used_once[kind],
                          f"Multiple {word} instructions should not be used in the same stage because only "
                          "the last one will be used")
            stage.used_once[kind] = line
            if kind != "healthcheck" and not node.is_json and not stage.shell_set:
                self.warn("JSONArgsRecommended", line, f"JSON arguments recommended for {word} to prevent "
                          "unintended behavior related to OS signals")
        elif kind == "shell":
            stage.shell_set = True
        elif kind == "expose":
            for port in node.values():
                self._expose(port, line)
        elif kind in ("copy", "add") and self.ignore is not None and not any(
            f.lower().startswith("--from=") for f in node.flags
        ):
            self._ignored_sources(node, "Add" if kind == "add" else "Copy", line)
        if isinstance(typed, EnvInstruction | LabelInstruction):
            pairs = typed.env if isinstance(typed, EnvInstruction) else typed.labels
            if any(p.no_delim for p in pairs):
                self.warn("LegacyKeyValueFormat", line,
                          f'"{word} key=value" should be used instead of legacy "{word} key value" format')
        unmatched: set[str] = set()
        if isinstance(typed, ArgInstruction):
            self._description(node, "ARG", [spec.key for spec in typed.args])
            for spec in typed.args:
                self._secret("ARG", spec.key, line)
                if spec.value is not None:
                    value, _ = self._expand(spec.value, stage.env, unmatched)
                    stage.env[spec.key] = value
                elif spec.key in global_args:
                    stage.env[spec.key] = global_args[spec.key]
                stage.env.setdefault(spec.key, stage.env.get(spec.key, ""))
        elif typed is not None:

            def collect(text: str) -> str:
                return self._expand(text, stage.env, unmatched)[0]

            expanded = typed.expand(collect)
            if isinstance(expanded, EnvInstruction):
                for pair in expanded.env:
                    self._secret("ENV", pair.key, line)
                    stage.env[pair.key] = pair.value
            elif kind == "workdir":
                path = getattr(expanded, "path", "")
                # a Windows stage's C:\app is absolute there (BuildKit judges by the stage's platform)
                if not stage.workdir_set and path and not _ABSOLUTE.match(path):
                    self.warn("WorkdirRelativePath", line, f'Relative workdir "{path}" can have unexpected '
                              "results if the base image changes")
                stage.workdir_set = True
        if stage.env_known:
            for var in sorted(unmatched - set(stage.env)):
                hint = search(var, sorted(stage.env), case_sensitive=True)
                suffix = f" (did you mean ${hint}?)" if hint else ""
                self.warn("UndefinedVar", line, f"Usage of undefined variable '${var}'{suffix}")

    def _expose(self, raw: str, line: int) -> None:
        parts = raw.split(":")
        ip = ":".join(parts[:-2]) if len(parts) >= 3 else ""
        host = parts[-2] if len(parts) >= 2 else ""
        _, _, proto = parts[-1].partition("/")
        if proto and proto != proto.lower():
            self.warn("ExposeProtoCasing", line,
                      f"Defined protocol '{raw}' in EXPOSE instruction should be lowercase")
        if ip or host:
            self.warn("ExposeInvalidFormat", line, "EXPOSE instruction should not define an IP address or "
                      f"host-port mapping, found '{raw}'")

    def _ignored_sources(self, node: Node, cmd: str, line: int) -> None:
        assert self.ignore is not None
        if self.ignore.exclusions or node.heredocs:
            return  # exclusions cannot be judged statically, as in BuildKit
        words = node.values()
        for src in words[:-1]:
            if "://" in src or src.startswith("git@"):
                continue
            clean = re.sub(r"/+", "/", src).strip("/") or "."
            clean = "/".join(p for p in clean.split("/") if p not in ("", "."))
            if not clean:
                if not any(p.cleaned in ("*", "**", "**/*") for p in self.ignore.patterns if not p.exclusion):
                    continue
                clean = "."
            try:
                hit = self.ignore.matches(clean)
            except DockyardError:
                continue
            if hit:
                self.warn("CopyIgnoredFile", line,
                          f'Attempting to {cmd} file "{clean}" that is excluded by .dockerignore')


def _platform_defaults() -> dict[str, str]:
    host = Platform.host()
    values = {"os": host.os, "arch": host.architecture, "variant": host.variant, "platform": str(host)}
    return {
        name: values[name[5:].lower() if name.startswith("BUILD") else name[6:].lower()]
        for name in PLATFORM_ARGS
    }


def _valid_reference(name: str) -> bool:
    if not name:
        return False
    if name.lower() == "scratch":
        return True
    try:
        reference.parse_normalized(name)
    except DockyardError:
        return False
    return True


def build_checks(
    text: str,
    filename: str = "Dockerfile",
    context_dir: Path | None = None,
    base_env: Callable[[str], list[str] | None] | None = None,
    extra: str = "",
) -> CheckResult:
    """Run the build checks over ``text``; ``context_dir`` enables CopyIgnoredFile (its .dockerignore),
    ``extra`` adds ``BUILDKIT_DOCKERFILE_CHECK``-style settings on top of the file's ``# check=``."""
    try:
        result = parse(text, filename)
    except DockerfileError:
        return CheckResult([], CheckConfig())
    config = CheckConfig()
    for directive in result.directives:
        if directive.name == "check":
            try:
                config = parse_check_options(directive.value.split(" ", 1)[0])
            except InvalidArgument as exc:
                raise InvalidArgument(f"{filename}:{directive.line}: {exc}") from None
    if extra:
        config = config.merged(parse_check_options(extra))
    ignore = None
    if context_dir is not None:
        present = [p.name for p in context_dir.iterdir()] if context_dir.is_dir() else []
        name = pick_ignore_file(Path(filename).name, present)
        if name:
            try:
                ignore = PatternMatcher(read_ignore_file((context_dir / name).read_bytes()))
            except (OSError, DockyardError):
                ignore = None
    checker = _Checker(result, config, filename, ignore, base_env)
    checker.run()
    checker.out.sort(key=lambda f: f.line)
    return CheckResult(checker.out, config)
