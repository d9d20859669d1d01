"""What the linter reports and how it is configured: :class:`Finding`, severities, :class:`LintConfig`."""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

# hadolint's levels, most severe first; "ignore" findings are computed but never reported.
SEVERITIES: tuple[str, ...] = ("error", "warning", "info", "style", "ignore")
LABEL_TYPES: tuple[str, ...] = ("text", "url", "semver", "hash", "rfc3339", "spdx", "email")


def severity_rank(severity: str) -> int:
    """0 for ``error`` ... 4 for ``ignore``; ``none`` (a threshold nothing reaches) is 5."""
    if severity == "none":
        return len(SEVERITIES)
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise InvalidArgument(
            f"unknown severity {severity!r} (expected one of {', '.join(SEVERITIES)}, none)"
        ) from None


@record(frozen=True, order=True)
class Finding:
    """One rule violation: where (``line``, 1-based; ``column``), which rule, how bad, and why."""

    line: int
    code: str
    severity: str
    message: str
    column: int = 1
    file: str = "Dockerfile"


@record
class LintConfig:
    """A hadolint-like configuration.

    ``ignored`` rule codes are dropped; ``overrides`` maps a code to a new severity;
    ``trusted_registries`` enables DL3026; ``label_schema`` (label -> one of :data:`LABEL_TYPES`)
    enables DL3049-DL3058 and ``strict_labels`` DL3050; ``failure_threshold`` is the lowest severity
    that makes the run fail; ``disable_ignore_pragma`` makes ``# hadolint ignore=`` comments inert.
    """

    ignored: set[str] = field(default_factory=set)
    overrides: dict[str, str] = field(default_factory=dict)
    trusted_registries: list[str] = field(default_factory=list)
    label_schema: dict[str, str] = field(default_factory=dict)
    strict_labels: bool = False
    failure_threshold: str = "info"
    disable_ignore_pragma: bool = False
    no_fail: bool = False

    def __post_init__(self) -> None:
        severity_rank(self.failure_threshold)
        for code, level in self.overrides.items():
            severity_rank(level)
            if level == "none":
                raise InvalidArgument(f"override for {code}: 'none' is not a severity")
        for label, kind in self.label_schema.items():
            if kind not in LABEL_TYPES:
                raise InvalidArgument(
                    f"label-schema: {label}: unknown type {kind!r} (expected one of {', '.join(LABEL_TYPES)})"
                )
