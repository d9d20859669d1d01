"""buildx's attestation flags: --sbom, --provenance and --attest, parsed as buildx parses them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.supplychain.spec import AttestSpec, parse_attest


def test_shorthands_and_attest() -> None:
    assert parse_attest("true", "true") == [AttestSpec("sbom"), AttestSpec("provenance")]
    [prov] = parse_attest(provenance="mode=max,version=v1")
    assert (prov.mode, prov.version) == ("max", "v1")
    [prov] = parse_attest(attest=["type=provenance"])
    assert (prov.mode, prov.version) == ("min", "v0.2")  # BuildKit's defaults
    assert parse_attest("false", None, ["type=sbom"]) == []  # the shorthand wins over --attest
    assert parse_attest(attest=["type=sbom,disabled=true"]) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"provenance": "mode=all"}, "--provenance: invalid provenance mode 'all' (use min or max)"),
    ({"provenance": "version=v2"}, "--provenance: invalid provenance version 'v2' (use v0.2 or v1)"),
    ({"attest": ["type=vex"]}, "--attest 'type=vex': type must be sbom or provenance"),
    ({"sbom": "yes"}, "invalid value 'yes' for --sbom: expected key=value, got 'yes'"),
])
def test_bad_values_are_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_attest(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.slow
def test_bare_flag_does_not_swallow_the_path(tmp_path: Path) -> None:
    """``build --sbom PATH`` builds PATH (buildx: the flag's value is given with ``=`` only)."""
    missing = tmp_path / "no-such-context"
    for flag in ("--sbom", "--provenance"):
        done = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(tmp_path / "root"), "build",
                               "-t", "x", flag, str(missing)], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "expected key=value" not in done.stderr and str(missing) in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(tmp_path / "root"), "build",
                           "--sbom", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 125 and "need a tag (-t)" in done.stderr
