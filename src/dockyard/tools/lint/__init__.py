"""``dockyard lint``: hadolint-compatible Dockerfile linting plus cache (DY1xx) and size (DY2xx) advice.

``lint(text, config=None, filename="Dockerfile", context_dir=None) -> list[Finding]`` runs every rule;
``lint_many(inputs)`` lints several Dockerfiles with ShellCheck (one process for all their RUNs);
``LintConfig`` holds hadolint's settings (ignored, trustedRegistries, failure-threshold, override,
label-schema, strict-labels); ``load_config(path)`` reads one from YAML, JSON or TOML;
``failed(findings, threshold)`` says whether a run fails; ``render(findings, fmt)`` formats them as
hadolint does (tty, json, checkstyle, sarif, gnu). ``build_checks(text)`` runs BuildKit's build
checks; ``fix(text)`` applies the safe rewrites (``--fix``). ``RULES`` / ``ADVICE`` list the rules.
"""

from __future__ import annotations

from dockyard.tools.lint.advice import ADVICE
from dockyard.tools.lint.buildchecks import CHECKS, CheckConfig, CheckResult, build_checks
from dockyard.tools.lint.engine import (
    LintInput,
    all_codes,
    config_from_mapping,
    failed,
    find_config,
    lint,
    lint_many,
    load_config,
)
from dockyard.tools.lint.fix import Fixed, fix
from dockyard.tools.lint.model import SEVERITIES, Finding, LintConfig
from dockyard.tools.lint.report import FORMATS, render
from dockyard.tools.lint.rules import RULES
from dockyard.tools.lint.shell import Command, Script, parse_script

__all__ = [
    "ADVICE",
    "CHECKS",
    "FORMATS",
    "RULES",
    "SEVERITIES",
    "CheckConfig",
    "CheckResult",
    "Command",
    "Finding",
    "Fixed",
    "LintConfig",
    "LintInput",
    "Script",
    "all_codes",
    "build_checks",
    "config_from_mapping",
    "failed",
    "find_config",
    "fix",
    "lint",
    "lint_many",
    "load_config",
    "parse_script",
    "render",
]
