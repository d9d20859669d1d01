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
