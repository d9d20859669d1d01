"""Docker's ``--filter`` semantics for ``images``, ``image prune``, ``system prune`` and ``builder prune``.

    filters = parse_filters(["dangling=true", "label=a=b", "until=24h"])  # name -> values (filters.Args)
    flt = image_filter(filters, created_of=..., now=now)   # images: validates, resolves before/since/until
    flt.match(created=ts, labels=labels, refs=["busybox:latest"])
    prune = prune_filter(filters, now=now)      # image/system prune: until, label, label!, dangling
    prune.match(created=ts, labels=labels)
    cache_until(filters, now=now)                          # builder prune: until / unused-for

``until=`` is read by ``parse_timestamp`` with moby's ``timetypes.GetTimestamp`` rules (a Go duration
before now, RFC 3339 with or without zone and fraction, a date, unix seconds); a time without a zone is
local time. Every command passes ``now`` down so that one "now" holds for the whole selection.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dockyard import goformat
from dockyard.errors import InvalidArgument

__all__ = ["BUILD_CACHE_FILTERS", "IMAGE_FILTERS", "PRUNE_FILTERS", "Filters", "ImageFilter", "PruneFilter",
           "cache_until", "image_filter", "match_reference", "parse_filters", "parse_timestamp",
           "prune_filter", "until_matches"]


class Filters(dict[str, list[str]]):
    """``--filter`` values by (lower-cased) name, in the order given; docker's ``filters.Args``."""

    def add(self, name: str, value: str) -> None:
        values = self.setdefault(name, [])
        if value not in values:
            values.append(value)

    def validate(self, accepted: Iterable[str]) -> None:
        """Raise docker's ``invalid filter 'NAME'`` for any name not in ``accepted``."""
        allowed = set(accepted)
        for name in self:
            if name not in allowed:
                raise InvalidArgument(f"invalid filter '{name}'")

    def get_bool(self, name: str, default: bool = False) -> bool:
        """A true/false (or 1/0) filter; conflicting or other values are ``invalid filter 'name=v'``."""
        values = self.get(name)
        if not values:
            return default
        lowered = {v.lower() for v in values}
        is_true = bool(lowered & {"1", "true"})
        is_false = bool(lowered & {"0", "false"})
        if len(values) > 1 or is_true == is_false:
            raise InvalidArgument(f"invalid filter '{name}={','.join(values)}'")
        return is_true

    def match_labels(self, labels: Mapping[str, str] | None, name: str = "label") -> bool:
        """Every ``label=key`` / ``label=key=value`` filter holds for ``labels`` (docker's MatchKVList);
        true when there is no such filter."""
        wanted = self.get(name)
        if not wanted:
            return True
        if not labels:
            return False
        for spec in wanted:
            key, sep, value = spec.partition("=")
            if key not in labels:
                return False
            if sep and labels[key] != value:
                return False
        return True

    @classmethod
    def of(cls, values: Mapping[str, Sequence[str]] | None) -> Filters:
        """Filters from a plain mapping (name -> values), as the library's callers pass them."""
        filters = cls()
        for name, vals in (values or {}).items():
            for v in vals:
                filters.add(name, v)
        return filters


def parse_filters(values: Iterable[str]) -> Filters:
    """Parse repeated ``--filter key=value`` flags (name lower-cased, both sides trimmed, as docker)."""
    filters = Filters()
    for raw in values:
        if raw == "":
            continue
        if "=" not in raw:
            raise InvalidArgument(f"invalid argument {goformat.quote(raw)} for \"-f, --filter\" flag: "
                                  "bad format of filter (expected name=value)")
        name, _, value = raw.partition("=")
        filters.add(name.strip().lower(), value.strip())
    return filters


def match_reference(patterns: Iterable[str], ref: Any) -> bool:
    """docker's ``reference=`` filter: any pattern path-matches the familiar ``name:tag`` or name.

    ``ref`` is a ``dockyard.oci.reference`` Reference or a reference string; a malformed pattern
    raises ``InvalidArgument("syntax error in pattern")``. No patterns match everything.
    """
    from dockyard.oci import reference  # deferred: keeps ``import format`` stdlib-only

    pats = list(patterns)
    if not pats:
        return True
    parsed = reference.parse_normalized(ref) if isinstance(ref, str) else ref
    return any(reference.familiar_match(p, parsed) for p in pats)


# moby's layouts for timestamps without a zone (read in the local zone) and with one.
_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_RFC3339_LOCAL = "2006-01-02T15:04:05"
_RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"


def _layout(value: str, in_location: bool) -> str:
    if "." in value:
        return _RFC3339_NANO_LOCAL if in_location else _RFC3339_NANO
    if "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1  # the zone offset's colon
        if in_location:
            return ("2006-01-02T15", "2006-01-02T15:04", _RFC3339_LOCAL)[min(colons, 2)]
        return ("2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00", _RFC3339)[min(colons, 2)]
    return "2006-01-02" if in_location else "2006-01-02Z07:00"


def _unix_seconds(value: str) -> float:
    """moby's parseTimestamp: ``SECONDS[.FRACTION]`` (the fraction scaled to nanoseconds)."""
    secs, dot, frac = value.partition(".")
    seconds = _go_int(secs)
    if not dot:
        return float(seconds)
    nanos = int(float(_go_int(frac)) * 10.0 ** (9 - len(frac)))
    return seconds + nanos / 1e9


def _go_int(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 64): an optional sign and ASCII digits only."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(text)
    return int(text)


def parse_timestamp(value: str, now: float | None = None) -> float:
    """An ``until=``/``since=`` value as unix seconds, by moby's ``timetypes.GetTimestamp`` rules.

    A Go duration (``10us``, ``1h30m``; not ``0``) counts back from ``now`` to the whole second; RFC 3339
    forms with a zone (``Z``, ``+05:30``) are read in it, those without (``2024-01-01``,
    ``2024-01-01T10:00``) in the local zone's offset at ``now``; ``1700000000`` and ``1700000000.5`` are
    unix seconds. Anything else is an InvalidArgument with docker's text.
    """
    current = _time.time() if now is None else now
    if value != "0":
        try:
            ago = goformat.parse_duration(value)
        except ValueError:
            pass
        else:
            return float((round(current * 1e9) - ago) // 1_000_000_000)
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    local = _dt.datetime.fromtimestamp(current).astimezone().utcoffset() or _dt.timedelta(0)
    zone = _dt.timezone(local) if in_location else _dt.UTC
    try:
        moment, nanos = goformat.parse_time(_layout(value, in_location), value, zone)
    except ValueError as exc:
        if "-" in value:
            raise InvalidArgument(str(exc)) from None
        try:
            return _unix_seconds(value)
        except ValueError:
            quoted = goformat.quote(value)
            raise InvalidArgument(f"failed to parse value as time or duration: {quoted}") from None
    return moment.timestamp() + nanos / 1e9


def until_matches(created: float, until: float | None) -> bool:
    """Whether something created (or last used) at ``created`` is older than an ``until`` time."""
    return until is None or created < until


IMAGE_FILTERS = ("before", "dangling", "label", "reference", "since", "until")


class ImageFilter:
    """docker's ``images --filter`` semantics, built once by ``image_filter`` and asked per image."""

    def __init__(self, filters: Filters, *, before: float | None, since: float | None,
                 until: float | None) -> None:
        self.filters = filters
        self.dangling = filters.get_bool("dangling") if "dangling" in filters else None
        self.references = filters.get("reference", [])
        self.before = before
        self.since = since
        self.until = until

    def refs(self, refs: Iterable[str]) -> list[str]:
        """The image's references (familiar ``name:tag``) that pass ``reference=``; all if none is set."""
        return [r for r in refs if match_reference(self.references, r)]

    def match(self, *, created: float, labels: Mapping[str, str] | None, refs: Sequence[str]) -> bool:
        """Whether an image created at ``created`` (unix seconds) with these labels and refs is listed."""
        dangling = not refs
        if self.dangling is not None and self.dangling != dangling:
            return False
        if self.before is not None and not created < self.before:
            return False
        if self.since is not None and not created > self.since:
            return False
        if not until_matches(created, self.until):
            return False
        if not self.filters.match_labels(labels):
            return False
        return not self.references or bool(self.refs(refs))


def image_filter(filters: Filters, *, created_of: Callable[[str], float], now: float | None = None,
                 accepted: Iterable[str] = IMAGE_FILTERS) -> ImageFilter:
    """Validate ``filters`` for ``images`` and resolve them: ``created_of(ref)`` gives the creation time
    of the image a ``before=``/``since=`` value names (raising NotFound if there is none).

    Several ``before`` values keep the earliest, several ``since`` the latest, as docker does.
    """
    filters.validate(accepted)
    before = min((created_of(v) for v in filters.get("before", [])), default=None)
    since = max((created_of(v) for v in filters.get("since", [])), default=None)
    untils = [parse_timestamp(v, now) for v in filters.get("until", [])]
    until = min(untils) if untils else None  # as moby: the earliest, like several before= values
    for pattern in filters.get("reference", []):
        match_reference([pattern], "x")  # a malformed pattern fails now, even with no images
    return ImageFilter(filters, before=before, since=since, until=until)


PRUNE_FILTERS = ("dangling", "label", "label!", "until")


class PruneFilter:
    """``image prune`` / ``system prune`` selection: built by ``prune_filter``, asked per image."""

    def __init__(self, filters: Filters, *, dangling_only: bool, until: float | None) -> None:
        self.filters = filters
        self.dangling_only = dangling_only
        self.until = until

    def match(self, *, created: float, labels: Mapping[str, str] | None) -> bool:
        """Whether an image created at ``created`` with these labels may be pruned (dangling aside)."""
        if not until_matches(created, self.until):
            return False
        if not self.filters.match_labels(labels):
            return False
        # moby: ``label!`` keeps an image only when every one of its specs matches it.
        return "label!" not in self.filters or not self.filters.match_labels(labels, "label!")


def prune_filter(filters: Filters, *, all: bool = False, now: float | None = None,
                 accepted: Iterable[str] = PRUNE_FILTERS) -> PruneFilter:
    """Validate ``filters`` for ``image prune`` and resolve them; ``dangling=false`` is ``--all``."""
    filters.validate(accepted)
    untils = filters.get("until", [])
    if len(untils) > 1:
        raise InvalidArgument("more than one until filter specified")
    dangling_only = filters.get_bool("dangling", default=True) and not all
    until = parse_timestamp(untils[0], now) if untils else None
    return PruneFilter(filters, dangling_only=dangling_only, until=until)


BUILD_CACHE_FILTERS = ("until", "unused-for")


def cache_until(filters: Filters, *, now: float | None = None) -> float | None:
    """``builder prune``'s ``until`` (``unused-for``, its older name): keep what was used since then."""
    filters.validate(BUILD_CACHE_FILTERS)
    if "until" in filters and "unused-for" in filters:
        raise InvalidArgument('conflicting filters: "until" and "unused-for"')
    name = "unused-for" if "unused-for" in filters else "until"
    values = filters.get(name, [])
    if len(values) > 1:
        raise InvalidArgument("filters expect only one value")
    if not values:
        return None
    try:
        return parse_timestamp(values[0], now)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid filter '{name}={values[0]}': {exc}") from None
