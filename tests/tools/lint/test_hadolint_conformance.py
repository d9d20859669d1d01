"""hadolint's own rule specs (71 DL rules, 1,046 assertions), one pytest case per assertion.

The data (``tests/data/hadolint/hadolint_rules.json``) records each assertion of
hadolint's hspec files; its ``semantics`` section says how the helpers count (see ``_check``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dockyard.tools.lint import LintConfig, lint
from tests.conftest import CONFORMANCE

DATA = CONFORMANCE / "hadolint" / "hadolint_rules.json"


def _cases() -> list[Any]:
    out = []
    for code, spec in json.loads(DATA.read_text())["rules"].items():
        for kind in ("must_trigger", "must_not_trigger"):
            for n, case in enumerate(spec[kind]):
                marks = []
                if "upstream_quirk" in case:
                    # Upstream names no real rule code here, so the assertion checks nothing: skip.
                    marks.append(pytest.mark.skip(reason=case["upstream_quirk"]))
                out.append(pytest.param(case, id=f"{code}-{kind}-{n}-L{case['src_line']}", marks=marks))
    return out


_SCHEMA_TYPES = {
    "RawText": "text",
    "Url": "url",
    "Rfc3339": "rfc3339",
    "Spdx": "spdx",
    "GitHash": "hash",
    "SemVer": "semver",
    "Email": "email",
}


def config_from_haskell(text: str | None) -> LintConfig:
    """The spec's Haskell record update (``def { allowedRegistries = [...] }``) as a LintConfig."""
    cfg = LintConfig()
    if not text:
        return cfg
    m = re.search(r"allowedRegistries\s*=\s*\[(.*?)\]", text)
    if m:
        cfg.trusted_registries = re.findall(r'"([^"]*)"', m.group(1))
    m = re.search(r"labelSchema\s*=\s*Map\.fromList\s*\[(.*)\]", text)
    if m:
        for label, kind in re.findall(r'\(\s*"([^"]*)"\s*,\s*(?:Rule\.)?(\w+)\s*\)', m.group(1)):
            cfg.label_schema[label] = _SCHEMA_TYPES[kind]
    if re.search(r"strictLabels\s*=\s*True", text):
        cfg.strict_labels = True
    return cfg


def _onbuild(dockerfile: str) -> str:
    return "\n".join(
        ("ONBUILD " + line) if line.startswith("RUN") else line for line in dockerfile.split("\n")
    )


@pytest.mark.parametrize("case", _cases())
def test_hadolint_spec(case: dict[str, Any]) -> None:
    text = case["dockerfile"]
    if case["onbuild"]:
        text = _onbuild(text)
    findings = lint(text + "\n", config_from_haskell(case.get("config")), advice=False, keep_ignored=True)
    hits = [f for f in findings if f.code == case["rule"]]
    shown = [(f.line, f.code) for f in findings]
    if case["expect"] == "catches":
        if case["onbuild"]:
            assert len(hits) == 1, shown
        else:
            assert hits, shown
        assert all(f.line > 0 for f in hits)
    elif case["expect"] == "catches_not":
        assert not hits, shown
    else:
        assert len(hits) == case["count"], shown
