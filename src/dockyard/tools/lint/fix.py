"""``dockyard lint --fix``: the rewrites that keep a Dockerfile's meaning, driven by the findings.

``fix(text)`` returns :class:`Fixed`: the new text and the codes it fixed. Rewrites:
``apt-get install`` gains ``--no-install-recommends`` (DL3015); a RUN that installs with apt-get
without cleaning gains ``&& rm -rf /var/lib/apt/lists/*`` (DL3009); ``ADD`` of a local file becomes
``COPY`` (DL3020); a shell-form CMD/ENTRYPOINT of plain words becomes JSON (DL3025,
JSONArgsRecommended); ``ENV/LABEL key value`` becomes ``key=value`` (LegacyKeyValueFormat);
``MAINTAINER`` becomes an ``org.opencontainers.image.authors`` label (DL4000); instruction, ``AS`` and
stage-name casing (ConsistentInstructionCasing, FromAsCasing, StageNameCasing, references included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from dockyard.dockerfile import Node, parse
from dockyard.errors import DockerfileError
from dockyard.record import field, record
from dockyard.tools.lint.buildchecks import build_checks
from dockyard.tools.lint.engine import lint
from dockyard.tools.lint.model import Finding

_APT_INSTALL = re.compile(r"(\bapt-get(?:\s+-[-\w=.]+)*\s+install\b)(?![^&;|]*--no-install-recommends)")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_./:=,@%+-]+$")
_AUTHORS = "org.opencontainers.image.authors"


@record
class Fixed:
    """The rewritten text and the codes of the findings it fixed (with their lines)."""

    text: str
    fixed: list[Finding] = field(default_factory=list)


def _keyword(span: str, word: str) -> str:
    """``span`` with its leading instruction keyword replaced by ``word``."""
    return re.sub(r"^(\s*)\S+", lambda m: m.group(1) + word, span, count=1)


def _apt_recommends(span: str) -> str:
    return _APT_INSTALL.sub(r"\1 --no-install-recommends", span)


def _apt_lists(span: str) -> str:
    body = span.rstrip("\n")
    return body + " \\\n    && rm -rf /var/lib/apt/lists/*" + span[len(body):]


def _add_to_copy(span: str) -> str:
    word = span.split(None, 1)[0]
    return _keyword(span, "copy" if word.islower() else "COPY")


def _json_form(node: Node) -> Callable[[str], str] | None:
    words = " ".join(node.values()).split()
    if node.flags or node.is_json or not words or "\n" in node.original:
        return None
    if not all(_PLAIN_WORD.match(w) for w in words):
        return None  # quotes, variables, operators: only a shell gives them their meaning

    def rewrite(span: str) -> str:
        keyword = span.split(None, 1)[0]
        return span[: span.index(keyword)] + keyword + " " + json.dumps(words) + "\n"

    return rewrite


def _quote(value: str) -> str:
    if value and re.match(r"^[^\s\"'\\$`]+$", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_value(node: Node) -> Callable[[str], str] | None:
    # ``ENV key value``: one pair, the value as the rest of the line; only plain values are rewritten
    m = re.match(r"^\s*(\S+)\s+(\S+)\s+(.*?)\s*$", node.original)
    if m is None or "\n" in node.original or "=" in m.group(2) or re.search(r"[\"'\\]", m.group(3)):
        return None
    keyword, key, value = m.groups()
    return lambda span: span[: span.index(keyword)] + f"{keyword} {key}={_quote(value)}\n"


def _maintainer(node: Node) -> Callable[[str], str] | None:
    m = re.match(r"^\s*(\S+)\s+(.*?)\s*$", node.original)
    if m is None or "\n" in node.original:
        return None
    keyword, who = m.groups()
    label = "label" if keyword.islower() else "LABEL"
    return lambda span: span[: span.index(keyword)] + f"{label} {_AUTHORS}={_quote(who)}\n"


def _case(word: str, upper: bool) -> str:
    return word.upper() if upper else word.lower()


def fix(text: str, filename: str = "Dockerfile") -> Fixed:
    """Rewrite what can be rewritten safely; the rest is left for the author."""
    try:
        nodes = parse(text, filename).children
    except DockerfileError:
        return Fixed(text)
    findings = lint(text, filename=filename, advice=False) + build_checks(text, filename).findings
    by_line: dict[int, set[str]] = {}
    for f in findings:
        by_line.setdefault(f.line, set()).add(f.code)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    keywords = [n.value for n in nodes]
    upper = sum(w.isupper() for w in keywords) >= sum(w.islower() for w in keywords)
    renames: dict[str, str] = {}
    for node in nodes:
        words = node.values()
        flagged = by_line.get(node.start_line, set())
        if node.value.lower() == "from" and len(words) == 3 and "StageNameCasing" in flagged:
            renames[words[2]] = words[2].lower()
    fixed: list[Finding] = []
    for node in reversed(nodes):
        codes = by_line.get(node.start_line, set())
        start, end = node.start_line - 1, node.end_line
        span = "".join(lines[start:end])
        before = span
        done: set[str] = set()
        kind = node.value.lower()
        # (the codes one rewrite fixes, the rewrite): hadolint's and BuildKit's names for the same thing
        steps: list[tuple[tuple[str, ...], Callable[[str], str] | None]] = []
        if kind == "run" and not node.heredocs and not node.is_json:
            steps += [(("DL3015",), _apt_recommends), (("DL3009",), _apt_lists)]
        if kind == "add" and not any(f.lower().startswith(("--checksum", "--keep-git-dir", "--unpack"))
                                     for f in node.flags):
            steps.append((("DL3020",), _add_to_copy))
        if kind in ("cmd", "entrypoint"):
            steps.append((("DL3025", "JSONArgsRecommended"), _json_form(node)))
        if kind in ("env", "label"):
            steps.append((("LegacyKeyValueFormat",), _key_value(node)))
        if kind == "maintainer":
            steps.append((("DL4000", "MaintainerDeprecated"), _maintainer(node)))
        for group, step in steps:
            if step is not None and codes.intersection(group):
                new = step(span)
                if new != span:
                    span = new
                    done.update(group)
        if "ConsistentInstructionCasing" in codes:
            word = span.split(None, 1)[0]
            span = _keyword(span, _case(word, upper))
            done.add("ConsistentInstructionCasing")
        if kind == "from" and len(node.values()) == 3:
            # AS follows FROM's case: when FromAsCasing says so, or when FROM alone was just re-cased
            as_word = node.values()[1]
            wanted = _case(as_word, span.split(None, 1)[0].isupper())
            if "FromAsCasing" in codes or ("ConsistentInstructionCasing" in codes and wanted != as_word):
                span = re.sub(rf"(\s){re.escape(as_word)}(\s+\S+\s*)$", rf"\g<1>{wanted}\g<2>", span, count=1)
            if "FromAsCasing" in codes:
                done.add("FromAsCasing")
        for old, new in renames.items():
            if kind == "from":
                span = re.sub(rf"(\s)({re.escape(old)})(\s*(?:\n|$))", rf"\g<1>{new}\g<3>", span)
                span = re.sub(rf"^(\s*\S+(?:\s+--\S+)*\s+){re.escape(old)}(\s)", rf"\g<1>{new}\g<2>", span)
            span = re.sub(rf"(--from=|from=){re.escape(old)}\b", rf"\g<1>{new}", span)
            if "StageNameCasing" in codes:
                done.add("StageNameCasing")
        if span != before:
            lines[start:end] = [span]
            fixed.extend(f for f in findings if f.line == node.start_line and f.code in done)
    fixed.sort(key=lambda f: f.line)
    return Fixed("".join(lines), fixed)
