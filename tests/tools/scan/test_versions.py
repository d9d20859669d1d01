"""Version ordering: Debian checked against dpkg itself; apk, PEP 440 and semver against known orders."""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess

import pytest

from dockyard.tools.scan.versions import compare, compare_apk, compare_deb, compare_semver

DEB = ["0", "1", "1.0", "1.0-0", "1.0-1", "1.0-1.1", "1.0~rc1", "1.0~rc1-1", "1.0~~", "1.0~", "1.0+b1",
       "1.0a", "1.0.0", "1:0.9", "2:1.0", "0:1.0", "1.2.3-4+deb12u1", "1.2.3-4+deb12u10", "1.2.3-4",
       "1.2.3-4~bpo11+1", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "2.36-9+deb12u4", "2.36-9+deb12u10",
       "1.10", "1.9", "1.01", "1.001-1", "a", "1.0-a", "1.0-1a", "7.88.1-10+deb12u5", "10.0", "9.99.99",
       "1.0.0~alpha", "1.0.0~alpha.1", "1.0.0~beta", "1.0.0.1", "1:1.0~rc", "20230311"]


def _random_deb(rng: random.Random) -> str:
    parts = [str(rng.randint(0, 12)) for _ in range(rng.randint(1, 3))]
    v = ".".join(parts) + rng.choice(["", "", "~rc1", "+dfsg", "a", "~", "+b2", "~beta.2"])
    if rng.random() < 0.6:
        v += "-" + rng.choice(["1", "2", "1.1", "0ubuntu1", "1~bpo1", "3+deb12u1", "10"])
    if rng.random() < 0.15:
        v = f"{rng.randint(0, 2)}:{v}"
    return v


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
@pytest.mark.slow
def test_deb_matches_dpkg_compare_versions() -> None:
    rng = random.Random(1234)
    versions = DEB + [_random_deb(rng) for _ in range(40)]
    pairs = list(itertools.combinations(versions, 2))
    rng.shuffle(pairs)
    pairs = pairs[:700]
    # One shell process runs every dpkg call (spawning 700 from Python costs more).
    script = "\n".join(f"dpkg --compare-versions '{a}' lt '{b}' && echo lt || "
                       f"{{ dpkg --compare-versions '{a}' eq '{b}' && echo eq || echo gt; }}"
                       for a, b in pairs)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == len(pairs)
    want = {"lt": -1, "eq": 0, "gt": 1}
    mismatches = [(a, b, o, compare_deb(a, b)) for (a, b), o in zip(pairs, out, strict=True)
                  if want[o] != compare_deb(a, b)]
    assert mismatches == []


def test_deb_basics() -> None:
    assert compare_deb("1.0~rc1", "1.0") < 0
    assert compare_deb("1:0.1", "9.9") > 0
    assert compare_deb("1.0", "1.0-0") == 0
    assert compare("Debian:12", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1") < 0


def test_apk_order() -> None:
    ordered = ["1.0_alpha", "1.0_alpha2", "1.0_beta", "1.0_pre1", "1.0_rc1", "1.0", "1.0-r1", "1.0-r2",
               "1.0_p1", "1.0a", "1.0b", "1.0.1", "1.01", "1.1", "1.2", "1.10", "2.0", "3.1.4-r5",
               "3.1.4_git2"]
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            assert compare_apk(a, b) < 0, (a, b)
            assert compare_apk(b, a) > 0, (b, a)
        assert compare_apk(a, a) == 0
    assert compare("Alpine:v3.18", "3.1.1-r1", "3.1.1-r10") < 0


def test_pypi_pep440() -> None:
    ordered = ["1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.1", "2.0", "10.0"]
    for a, b in itertools.combinations(ordered, 2):
        assert compare("PyPI", a, b) < 0, (a, b)
    assert compare("PyPI", "1.0", "1.0.0") == 0
    assert compare("PyPI", "2!1.0", "3.0") > 0


def test_semver_spec_order() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    for a, b in itertools.combinations(ordered, 2):
        assert compare_semver(a, b) < 0, (a, b)
    assert compare_semver("1.0.0+build.1", "1.0.0") == 0
    assert compare_semver("v2.1.0", "2.1.0") == 0


# rpm's own test suite (tests/rpmvercmp.at), as remembered: (a, b, rpmvercmp(a, b)).
RPMVERCMP = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1), ("2.0.1", "2.0.1a", -1), ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p10", 0), ("5.5p1", "5.5p10", -1), ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10.1", -1), ("xyz.4", "xyz.4", 0), ("xyz.4", "8", -1), ("8", "xyz.4", 1),
    ("xyz.4", "2", -1), ("5.5p2", "5.6p1", -1), ("5.6p1", "6.5p1", -1), ("6.0.rc1", "6.0", 1),
    ("10b2", "10a1", 1), ("10a2", "10b2", -1), ("1.0aa", "1.0aa", 0), ("1.0a", "1.0aa", -1),
    ("10.0001", "10.0001", 0), ("10.0001", "10.1", 0), ("10.0001", "10.0039", -1),
    ("4.999.9", "5.0", -1), ("20101121", "20101122", -1), ("2_0", "2_0", 0), ("2.0", "2_0", 0),
    ("a", "a", 0), ("a+", "a+", 0), ("a+", "a_", 0), ("+a", "_a", 0),
    ("1.0~rc1", "1.0~rc1", 0), ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc1~git123", "1.0~rc1", -1), ("1.0^", "1.0^", 0), ("1.0^", "1.0", 1), ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git2", -1), ("1.0^git1", "1.01", -1), ("1.0^20160101", "1.0.1", -1),
    ("1.0^20160101^git1", "1.0^20160102", -1), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
]


def test_rpm_rpmvercmp_table() -> None:
    from dockyard.tools.scan.versions import rpmvercmp

    bad = [(a, b, want, rpmvercmp(a, b)) for a, b, want in RPMVERCMP if rpmvercmp(a, b) != want]
    assert bad == []


def test_rpm_evr() -> None:
    assert compare("Red Hat", "1:1.0-1.el9", "2.0-1.el9") > 0
    assert compare("Rocky Linux:9", "3.0.7-16.el9", "3.0.7-17.el9") < 0
    assert compare("AlmaLinux", "2.34-60.el9", "2.34") == 0  # no release on one side: versions decide
    assert compare("Red Hat", "0:8.7p1-38.el9", "8.7p1-38.el9") == 0


# Maven's ComparableVersionTest (maven-artifact, 3.9): VERSIONS_QUALIFIER, VERSIONS_NUMBER (each
# ascending) and pairs from testVersionsEqual.
MAVEN_QUALIFIER = ["1-alpha2snapshot", "1-alpha2", "1-alpha-123", "1-beta-2", "1-beta123", "1-m2", "1-m11",
                   "1-rc", "1-cr2", "1-rc123", "1-SNAPSHOT", "1", "1-sp", "1-sp2", "1-sp123", "1-abc",
                   "1-def", "1-pom-1", "1-1-snapshot", "1-1", "1-2", "1-123"]
MAVEN_NUMBER = ["2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
                "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11",
                "11.a", "11b", "11c", "11m"]
MAVEN_EQUAL = [("1", "1.0"), ("1", "1.0.0"), ("1.0", "1.0.0"), ("1", "1-0"), ("1", "1.0-0"), ("1a", "1-a"),
               ("1a", "1.0-a"), ("1x", "1-x"), ("1-ga", "1"), ("1-final", "1"), ("1-release", "1"),
               ("1-a1", "1-alpha-1"), ("1-b2", "1-beta-2"), ("1-m3", "1-milestone-3"), ("1-cr5", "1-rc5"),
               ("1X", "1x"), ("1-GA", "1"), ("1ga", "1"), ("1release", "1"), ("1final", "1"), ("1cr", "1rc"),
               ("1.0.0x", "1-x"), ("1x", "1.0.0-x"), ("1a", "1.0.0-a"), ("1.0a", "1-a")]


@pytest.mark.parametrize("ordered", [MAVEN_QUALIFIER, MAVEN_NUMBER], ids=["qualifiers", "numbers"])
def test_maven_comparable_version(ordered: list[str]) -> None:
    from dockyard.tools.scan.versions import compare_maven

    bad = [(a, b) for a, b in itertools.combinations(ordered, 2)
           if compare_maven(a, b) >= 0 or compare_maven(b, a) <= 0]
    assert bad == []


def test_maven_equal() -> None:
    from dockyard.tools.scan.versions import compare_maven

    assert [(a, b) for a, b in MAVEN_EQUAL if compare_maven(a, b) != 0] == []
    assert compare("Maven", "2.14.1", "2.15.0") < 0 and compare("Maven", "2.17.0", "2.17.0-rc1") > 0


def test_go_and_crates_use_semver() -> None:
    assert compare("Go", "v0.3.7", "0.3.8") < 0
    assert compare("Go", "v1.2.3-0.20230101000000-abcdef123456", "v1.2.3") < 0  # a pseudo-version
    assert compare("Go", "v2.0.0+incompatible", "2.0.0") == 0
    assert compare("crates.io", "1.0.0-alpha.1", "1.0.0") < 0
