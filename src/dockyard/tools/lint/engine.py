"""Run the rules over a Dockerfile: pragmas, config, severities, the ONBUILD pass, dockyard's advice."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.tools.lint.advice import ADVICE, AdviceContext
from dockyard.tools.lint.model import SEVERITIES, Finding, LintConfig, severity_rank
from dockyard.tools.lint.rules import RULES, Context
from dockyard.tools.lint.source import load

CONFIG_NAMES = (".hadolint.yaml", ".hadolint.yml", ".hadolint.json", ".hadolint.toml")


def all_codes() -> list[str]:
    """Every rule code this linter knows (DL rules, then dockyard's DY advice)."""
    return sorted(RULES) + sorted(ADVICE)


def lint(
    text: str,
    config: LintConfig | None = None,
    filename: str = "Dockerfile",
    context_dir: Path | None = None,
    advice: bool = True,
    keep_ignored: bool = False,
) -> list[Finding]:
    """Lint Dockerfile ``text``; findings sorted by line.

    ``context_dir`` (the build context) lets the advice look for ``.dockerignore``; ``advice=False``
    runs the hadolint rules only. Findings whose severity is ``ignore`` (DL1001, DL3057 by default,
    or by override) are dropped unless ``keep_ignored``.
    """
    config = config or LintConfig()
    src = load(text, filename)
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
    raw: list[tuple[int, str, str | None]] = []
    for code, rule in RULES.items():
        for line, message in rule.check(main):
            raw.append((line, code, message))
        if rule.onbuild and triggers.instrs:
            for line, message in rule.check(triggers):
                raw.append((line, code, message))
    raw.extend((line, "DL1001", None) for line in src.ignore_pragma_lines)
    severities = {code: r.severity for code, r in RULES.items()}
    messages = {code: r.message for code, r in RULES.items()}
    if advice:
        actx = AdviceContext(main, text, context_dir)
        for code, item in ADVICE.items():
            severities[code] = item.severity
            messages[code] = item.message
            raw.extend((line, code, message) for line, message in item.check(actx))

    use_pragmas = not config.disable_ignore_pragma
    out: list[Finding] = []
    for line, code, message in raw:
        severity = config.overrides.get(code, severities[code])
        if code in config.ignored:
            continue
        if use_pragmas and (code in src.global_ignores or code in src.ignores.get(line, ())):
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
    """Read a config file: JSON or TOML always; YAML only when PyYAML is importable.

    JSON is valid YAML, so a ``.hadolint.yaml`` written as JSON reads without PyYAML too.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read lint config {path}: {exc.strerror}") from None
    data: Any
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            try:
                data = json.loads(text) if text.strip() else {}
            except json.JSONDecodeError:
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
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidArgument(
            f"{path}: YAML needs PyYAML, which is not installed; write the config as JSON "
            "(valid YAML too) or TOML"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path}: not valid YAML: {exc}") from None


def find_config(directory: Path) -> Path | None:
    """The first ``.hadolint.{yaml,yml,json,toml}`` in ``directory``, if any."""
    for name in CONFIG_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None
