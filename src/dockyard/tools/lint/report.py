"""Render findings the way hadolint does: tty, json, checkstyle, sarif, gnu."""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from dockyard.errors import InvalidArgument
from dockyard.tools.lint.buildchecks import CHECKS
from dockyard.tools.lint.model import Finding

FORMATS = ("tty", "json", "checkstyle", "sarif", "gnu")
_COLORS = {"error": "\x1b[1m\x1b[91m", "warning": "\x1b[1m\x1b[93m", "info": "\x1b[92m", "style": "\x1b[94m"}
_RESET = "\x1b[0m"


def render(
    findings: list[Finding], fmt: str = "tty", color: bool = False, filename: str | None = None
) -> str:
    """The report text (ending in a newline unless empty); ``filename`` overrides each finding's file."""

    def name(f: Finding) -> str:
        return filename or f.file

    if fmt == "tty":
        lines = []
        for f in findings:
            level = f"{_COLORS.get(f.severity, '')}{f.severity}{_RESET}" if color else f.severity
            lines.append(f"{name(f)}:{f.line} {f.code} {level}: {f.message}")
        return "".join(line + "\n" for line in lines)
    if fmt == "gnu":
        return "".join(f"hadolint:{name(f)}:{f.line}: {f.code} {f.severity}: {f.message}\n" for f in findings)
    if fmt == "json":
        return (
            json.dumps(
                [
                    {
                        "code": f.code,
                        "column": f.column,
                        "file": name(f),
                        "level": f.severity,
                        "line": f.line,
                        "message": f.message,
                    }
                    for f in findings
                ],
                separators=(",", ":"),
            )
            + "\n"
        )
    if fmt == "checkstyle":
        files: dict[str, list[Finding]] = {}
        for f in findings:
            files.setdefault(name(f), []).append(f)
        body = "".join(
            f"<file name={quoteattr(file)}>"
            + "".join(
                f'<error column="{f.column}" line="{f.line}" message={quoteattr(f.message)} '
                f"severity={quoteattr(f.severity)} source={quoteattr(f.code)}/>"
                for f in items
            )
            + "</file>"
            for file, items in files.items()
        )
        return f'<?xml version="1.0" encoding="UTF-8"?><checkstyle version="4.3">{body}</checkstyle>\n'
    if fmt == "sarif":
        return _sarif(findings, name)
    raise InvalidArgument(f"unknown lint format {fmt!r} (expected one of {', '.join(FORMATS)})")


_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note", "style": "note"}


def _help_uri(code: str) -> str:
    if code.startswith("DL"):
        return f"https://github.com/hadolint/hadolint/wiki/{code}"
    if code.startswith("SC"):
        return f"https://www.shellcheck.net/wiki/{code}"
    if code in CHECKS:
        return CHECKS[code].url
    return "https://github.com/hadolint/hadolint"


def _sarif(findings: list[Finding], name: Callable[[Finding], str]) -> str:
    """SARIF 2.1.0 with the tool's version and one ``rules`` entry per code found."""
    from dockyard import __version__
    from dockyard.tools.lint.advice import ADVICE
    from dockyard.tools.lint.rules import RULES

    known = {code: (r.message, r.severity) for code, r in RULES.items()}
    known.update({code: (a.message, a.severity) for code, a in ADVICE.items()})
    known.update({name: (c.description, "warning") for name, c in CHECKS.items()})
    rules: list[dict[str, object]] = []
    index: dict[str, int] = {}
    for f in findings:
        if f.code in index:
            continue
        index[f.code] = len(rules)
        text, severity = known.get(f.code, (f.message, f.severity))
        rules.append(
            {
                "id": f.code,
                "shortDescription": {"text": text},
                "helpUri": _help_uri(f.code),
                "defaultConfiguration": {"level": _SARIF_LEVELS.get(severity, "none")},
                "properties": {"severity": severity},
            }
        )
    results = [
        {
            "level": _SARIF_LEVELS.get(f.severity, "none"),
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": name(f)},
                        "region": {
                            "endColumn": f.column,
                            "endLine": f.line,
                            "sourceLanguage": "dockerfile",
                            "startColumn": f.column,
                            "startLine": f.line,
                        },
                    }
                }
            ],
            "message": {"text": f.message},
            "ruleId": f.code,
            "ruleIndex": index[f.code],
        }
        for f in findings
    ]
    doc = {
        "$schema": "http://json.schemastore.org/sarif-2.1.0",
        "version": "2.1.0",
        "runs": [
            {
                "defaultSourceLanguage": "dockerfile",
                "results": results,
                "tool": {
                    "driver": {
                        "name": "dockyard lint",
                        "fullName": "dockyard Dockerfile linter (hadolint rules, ShellCheck, build checks)",
                        "version": __version__,
                        "informationUri": "https://github.com/hadolint/hadolint",
                        "rules": rules,
                    }
                },
            }
        ],
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"
