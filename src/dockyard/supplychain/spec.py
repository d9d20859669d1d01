"""buildx's attestation flags: ``--sbom``, ``--provenance`` and ``--attest type=...``.

    parse_attest(sbom="true", provenance="mode=max", attest=["type=sbom"]) -> [AttestSpec]

``--sbom=true`` / ``--provenance=true`` (or ``=mode=min|max,version=v0.2|v1``) are shorthands for
``--attest type=sbom`` / ``--attest type=provenance,...``; ``false`` turns one off. A bare
``--provenance`` means ``mode=min``, BuildKit's default mode; provenance ``version`` defaults to v0.2.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

__all__ = ["AttestSpec", "parse_attest"]

KINDS = ("sbom", "provenance")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


@record(frozen=True, slots=True)
class AttestSpec:
    kind: str                       # sbom | provenance
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.attrs.get("mode", "min")

    @property
    def version(self) -> str:
        return self.attrs.get("version", "v0.2")


def _fields(value: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid value {value!r} for {flag}: expected key=value, got {part!r}")
        out[key.strip()] = val.strip()
    return out


def _check(spec: AttestSpec, flag: str) -> AttestSpec:
    if spec.kind == "provenance":
        if spec.mode not in ("min", "max"):
            raise InvalidArgument(f"{flag}: invalid provenance mode {spec.mode!r} (use min or max)")
        if spec.version not in ("v0.2", "v1"):
            raise InvalidArgument(f"{flag}: invalid provenance version {spec.version!r} (use v0.2 or v1)")
    return spec


def _shorthand(kind: str, value: str | None, flag: str) -> AttestSpec | None:
    if value is None:
        return None
    text = value.strip()
    if text.lower() in _BOOLS:
        return AttestSpec(kind) if _BOOLS[text.lower()] else AttestSpec(kind, {"disabled": "true"})
    attrs = _fields(text, flag)
    if attrs.pop("disabled", "false").lower() == "true":
        return AttestSpec(kind, {"disabled": "true"})
    return _check(AttestSpec(kind, attrs), flag)


def parse_attest(sbom: str | None = None, provenance: str | None = None,
                 attest: Sequence[str] = ()) -> list[AttestSpec]:
    """The attestations asked for, one per kind (a later flag for the same kind wins)."""
    specs: dict[str, AttestSpec] = {}
    for value in attest:
        attrs = _fields(value, "--attest")
        kind = attrs.pop("type", "")
        if kind not in KINDS:
            raise InvalidArgument(f"--attest {value!r}: type must be sbom or provenance")
        if attrs.pop("disabled", "false").lower() == "true":
            specs[kind] = AttestSpec(kind, {"disabled": "true"})
        else:
            specs[kind] = _check(AttestSpec(kind, attrs), "--attest")
    shorthands: tuple[tuple[str, str | None, str], ...] = (("sbom", sbom, "--sbom"),
                                                            ("provenance", provenance, "--provenance"))
    for kind, given, flag in shorthands:
        spec = _shorthand(kind, given, flag)
        if spec is not None:
            specs[kind] = spec
    return [s for s in specs.values() if s.attrs.get("disabled") != "true"]
