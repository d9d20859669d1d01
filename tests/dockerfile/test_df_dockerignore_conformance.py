"""moby/patternmatcher and ignorefile tests (dockerignore/*.json), plus the per-Dockerfile ignore file."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.dockerfile.dockerignore import (
    PatternError,
    PatternMatcher,
    go_clean,
    matches,
    pick_ignore_file,
    read_ignore_file,
)

from .conformance import DOCKERIGNORE, load

PM = load(DOCKERIGNORE / "patternmatcher.json")
IF = load(DOCKERIGNORE / "ignorefile.json")


def _id(c: dict[str, Any]) -> str:
    return f"{c['group']}:{c['patterns']}:{c['path']}"


@pytest.mark.parametrize("case", PM["cases"], ids=_id)
def test_pattern_cases(case: dict[str, Any]) -> None:
    # unix_only cases are exactly the ones to run here; none are Windows-only.
    def run() -> bool:
        if case["api"] == "Matches":
            return matches(case["path"], case["patterns"])
        return PatternMatcher(case["patterns"]).matches(case["path"])

    if case.get("expect_error"):
        with pytest.raises(PatternError) as err:
            run()
        assert str(err.value) == case["expect_error"]
    else:
        assert run() == case["expect_match"]


@pytest.mark.parametrize("case", PM["new_cases"], ids=lambda c: c["name"])
def test_new_cases(case: dict[str, Any]) -> None:
    if "expect_error" in case:
        with pytest.raises(PatternError) as err:
            PatternMatcher(case["patterns"])
        assert str(err.value) == case["expect_error"]
        return
    pm = PatternMatcher(case["patterns"])
    if "expect_pattern_count" in case:
        assert len(pm.patterns) == case["expect_pattern_count"]
    if "expect_exclusions" in case:
        assert pm.exclusions == case["expect_exclusions"]
    if "then" in case:
        for _ in range(case["then"]["repeat"]):
            with pytest.raises(PatternError, match=case["then"]["expect_error"]):
                pm.matches(case["then"]["path"])


@pytest.mark.parametrize("case", PM["compile_cases"]["cases"], ids=lambda c: c["pattern"])
def test_compile_kind(case: dict[str, Any]) -> None:
    kinds = {"exactMatch": 0, "prefixMatch": 1, "suffixMatch": 2, "regexpMatch": 3}
    pm = PatternMatcher([case["pattern"]])
    assert pm.patterns[0].kind == kinds[case["match_type"]]
    if case["regexp"] is not None:
        assert pm.patterns[0].regex is not None
        # Python fullmatch replaces Go's trailing "$"; the body is the same expression.
        assert "^" + pm.patterns[0].regex.pattern.removeprefix("^") + "$" == case["regexp"]


@pytest.mark.parametrize("case", IF["readall_cases"], ids=lambda c: c["name"])
def test_read_all(case: dict[str, Any]) -> None:
    assert read_ignore_file(case["content"]) == case["expect"]


def _context_after_ignore(files: dict[str, str], ignore_text: str) -> set[str]:
    pm = PatternMatcher(read_ignore_file(ignore_text))
    return {name for name in files if not pm.matches(name)}


def test_scenario_dockerignore() -> None:
    case = IF["build_scenarios"][0]
    kept = _context_after_ignore(case["context_files"], case["dockerignore"])
    assert set(case["expect_present"]) <= kept
    assert not (set(case["expect_absent"]) & kept)


def test_scenario_invalid() -> None:
    case = IF["build_scenarios"][1]
    with pytest.raises(PatternError):
        _context_after_ignore(case["context_files"], case["dockerignore"])


def test_scenario_override() -> None:
    case = IF["build_scenarios"][2]
    files = case["context_files"]
    for build in case["builds"]:
        name = pick_ignore_file(build["dockerfile"], set(files))
        assert name == build["dockerfile"] + ".dockerignore"
        kept = _context_after_ignore(files, files[name])
        if build["dockerfile"] == "Dockerfile":
            assert "foo" in kept and "bar" not in kept
        else:
            assert "bar" in kept and "foo" not in kept


def test_pick_falls_back_to_dockerignore() -> None:
    assert pick_ignore_file("Dockerfile", {".dockerignore", "Dockerfile"}) == ".dockerignore"
    assert pick_ignore_file("sub/app.Dockerfile", {"sub/app.Dockerfile.dockerignore"}) == (
        "sub/app.Dockerfile.dockerignore")
    assert pick_ignore_file("Dockerfile", {"Dockerfile"}) is None


def test_go_clean() -> None:
    assert [go_clean(p) for p in ("", "a/../..", "/../a", "a//b/./c/", "./", "/")] == [
        ".", "..", "/a", "a/b/c", ".", "/"]


@pytest.mark.slow
def test_hundred_thousand_paths() -> None:
    # The speed goal (under 1 s) is measured by bench/bench_dockerfile.py: benchmarks are not timed tests.
    patterns = read_ignore_file("node_modules\n**/*.pyc\n.git\n*.log\nbuild/**\n!build/keep\n"
                                "docs/*.md\n**/__pycache__\ntmp?\n[a-c]*.bak\n")
    exts = ("py", "pyc", "log", "txt")
    paths = [f"src/pkg{i % 50}/mod{i % 7}/file{i}.{exts[i % 4]}" for i in range(100_000)]
    pm = PatternMatcher(patterns)
    excluded = sum(pm.matches(p) for p in paths)
    assert excluded == 25_000  # the .pyc quarter; "*.log" matches only at the context root


def test_last_pattern_wins_is_gos_ordered_loop() -> None:
    """``matches`` checks from the last pattern back (the last pattern matching the path or a parent
    decides); Go walks the patterns forward, skipping exclusions until something matched. Both must
    agree on every path: random pattern lists and paths, compared with the forward loop."""
    import random

    rng = random.Random(7)
    parts = ["a", "b", "c", "*", "**", "?", "x.log", "*.log", "[ab]", "keep"]
    names = ["a", "b", "c", "x.log", "y.log", "keep", "ab"]
    checked = 0
    for _ in range(300):
        patterns = []
        for _ in range(rng.randint(1, 6)):
            pattern = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 3)))
            patterns.append(("!" if rng.random() < 0.35 else "") + pattern)
        pm = PatternMatcher(patterns)
        for _ in range(20):
            path = "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
            assert pm.matches(path) == pm._matches_in_order(path), (patterns, path)
            checked += 1
    assert checked == 6000
