"""dockyard.imageops.filters: docker's --filter semantics (names, labels, references, dangling, until=)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dockyard.errors import InvalidArgument
from dockyard.imageops import filters


def test_parse_filters() -> None:
    f = filters.parse_filters(["dangling=true", " Label = a=b ", "label=c", "label=c", ""])
    assert f == {"dangling": ["true"], "label": ["a=b", "c"]}
    with pytest.raises(InvalidArgument, match=r"bad format of filter \(expected name=value\)"):
        filters.parse_filters(["foo"])
    with pytest.raises(InvalidArgument) as info:
        f.validate({"label"})
    assert str(info.value) == "invalid filter 'dangling'"
    f.validate({"dangling", "label", "reference"})


@pytest.mark.parametrize(("values", "expected"), [
    (["true"], True), (["1"], True), (["false"], False), (["0"], False), (["TRUE"], True), ([], False),
])
def test_bool_filter(values: list[str], expected: bool) -> None:
    f = filters.parse_filters([f"dangling={v}" for v in values])
    assert f.get_bool("dangling") is expected


def test_bool_filter_errors() -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'dangling=maybe'$"):
        filters.parse_filters(["dangling=maybe"]).get_bool("dangling")
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'dangling=true,false'$"):
        filters.parse_filters(["dangling=true", "dangling=false"]).get_bool("dangling")


def test_label_filters() -> None:
    labels = {"a": "1", "b": "", "c": "x=y"}
    assert filters.parse_filters(["label=a"]).match_labels(labels)
    assert filters.parse_filters(["label=a=1", "label=b"]).match_labels(labels)
    assert filters.parse_filters(["label=c=x=y"]).match_labels(labels)
    assert filters.parse_filters(["label=b="]).match_labels(labels)
    assert not filters.parse_filters(["label=a=2"]).match_labels(labels)
    assert not filters.parse_filters(["label=a", "label=z"]).match_labels(labels)
    assert not filters.parse_filters(["label=a"]).match_labels({})
    assert not filters.parse_filters(["label=a"]).match_labels(None)
    assert filters.parse_filters([]).match_labels(None)


@pytest.mark.parametrize(("patterns", "ref", "expected"), [
    (["busybox"], "busybox:latest", True),
    (["busybox:latest"], "docker.io/library/busybox:latest", True),
    (["busy*"], "busybox:1.36", True),
    (["busybox:1.*"], "busybox:1.36", True),
    (["busybox:2.*"], "busybox:1.36", False),
    (["*"], "library/busybox:1", True),
    (["*"], "quay.io/org/app:1", False),
    (["*/*"], "myorg/app:1", True),
    (["quay.io/org/*"], "quay.io/org/app:1", True),
    (["127.0.0.1:5000/peers/*"], "127.0.0.1:5000/peers/busybox:local", True),
    (["nope", "busy?ox"], "busybox:local", True),
    ([], "anything:1", True),
])
def test_match_reference(patterns: list[str], ref: str, expected: bool) -> None:
    assert filters.match_reference(patterns, ref) is expected


def test_match_reference_bad_pattern() -> None:
    with pytest.raises(InvalidArgument, match=r"^syntax error in pattern$"):
        filters.match_reference(["["], "busybox:latest")


def test_parse_timestamp() -> None:
    now = 1_800_000_000.0
    assert filters.parse_timestamp("24h", now) == now - 86400
    assert filters.parse_timestamp("10m", now) == now - 600
    assert filters.parse_timestamp("2026-11-27T21:12:15Z", now) == 1795813935
    assert filters.parse_timestamp("2026-11-27T21:12:15.5Z", now) == 1795813935.5
    assert filters.parse_timestamp("2026-11-27T23:12:15+02:00", now) == 1795813935
    assert filters.parse_timestamp("1700000000", now) == 1700000000
    assert filters.parse_timestamp("1700000000.25", now) == 1700000000.25
    assert filters.parse_timestamp("0", now) == 0
    local = dt.datetime(2026, 11, 27, tzinfo=dt.datetime.now().astimezone().tzinfo).timestamp()
    assert filters.parse_timestamp("2026-11-27", now) == local
    with pytest.raises(InvalidArgument, match=r'^failed to parse value as time or duration: "xyz"$'):
        filters.parse_timestamp("xyz", now)
    with pytest.raises(InvalidArgument, match=r"^parsing time"):
        filters.parse_timestamp("2020-01-01T00:00:99", now)


IMAGES = {  # ref -> (created, labels)
    "old:1": (1000.0, {"tier": "base"}),
    "mid:1": (2000.0, {"tier": "app", "team": "x"}),
    "new:1": (3000.0, {}),
}


def _listed(values: list[str], now: float = 5000.0) -> list[str]:
    flt = filters.image_filter(filters.parse_filters(values), created_of=lambda ref: IMAGES[ref][0], now=now)
    rows = [(ref, *IMAGES[ref]) for ref in IMAGES] + [("", 2500.0, {})]
    return [ref or "<none>" for ref, created, labels in rows
            if flt.match(created=created, labels=labels, refs=[ref] if ref else [])]


def test_image_filter() -> None:
    assert _listed([]) == ["old:1", "mid:1", "new:1", "<none>"]
    assert _listed(["dangling=true"]) == ["<none>"]
    assert _listed(["dangling=false"]) == ["old:1", "mid:1", "new:1"]
    assert _listed(["before=mid:1"]) == ["old:1"]
    assert _listed(["before=new:1", "before=mid:1"]) == ["old:1"]  # the earliest wins
    assert _listed(["since=old:1"]) == ["mid:1", "new:1", "<none>"]
    assert _listed(["since=old:1", "since=mid:1"]) == ["new:1", "<none>"]  # the latest wins
    assert _listed(["until=2500"]) == ["old:1", "mid:1"]
    assert _listed(["until=2500", "until=1500"]) == ["old:1"]  # the earliest wins
    assert _listed(["until=1h"], now=3000.0 + 3600) == ["old:1", "mid:1", "<none>"]
    assert _listed(["label=tier"]) == ["old:1", "mid:1"]
    assert _listed(["label=tier=app", "label=team"]) == ["mid:1"]
    assert _listed(["reference=*d:1"]) == ["old:1", "mid:1"]
    assert _listed(["reference=new", "reference=old"]) == ["old:1", "new:1"]
    flt = filters.image_filter(filters.parse_filters(["reference=busybox:*"]), created_of=lambda ref: 0.0)
    assert flt.refs(["busybox:1", "busybox:2", "alpine:1"]) == ["busybox:1", "busybox:2"]
    assert filters.image_filter(filters.Filters(), created_of=lambda r: 0.0).refs(["a:1"]) == ["a:1"]


def test_image_filter_errors() -> None:
    def never(ref: str) -> float:
        raise AssertionError(ref)

    with pytest.raises(InvalidArgument, match=r"^invalid filter 'foo'$"):
        filters.image_filter(filters.parse_filters(["foo=bar"]), created_of=never)
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'dangling=maybe'$"):
        filters.image_filter(filters.parse_filters(["dangling=maybe"]), created_of=never)
    with pytest.raises(InvalidArgument, match=r"^syntax error in pattern$"):
        filters.image_filter(filters.parse_filters(["reference=["]), created_of=never)
    with pytest.raises(InvalidArgument, match=r"^failed to parse value as time or duration"):
        filters.image_filter(filters.parse_filters(["until=soon"]), created_of=never)




@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+05:30, so reading a date as local or as UTC gives different answers."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


NOW = 1_700_000_000.5  # 2023-11-14T22:13:20.5Z

# moby's timetypes.GetTimestamp cases: value -> unix seconds, with NOW as the reference, in Asia/Kolkata.
TIMESTAMPS = [
    ("10us", 1_700_000_000), ("1h30m", 1_699_994_600), ("1.5s", 1_699_999_999), ("-2m", 1_700_000_120),
    ("0", 0), ("2024-01-01", 1_704_047_400), ("2024-01-01T10", 1_704_083_400),
    ("2024-01-01T10:30", 1_704_085_200), ("2024-01-01T10:30:15", 1_704_085_215),
    ("2024-01-01T10:30:15.25", 1_704_085_215.25), ("2024-01-01Z", 1_704_067_200),
    ("2024-01-01+05:30", 1_704_047_400), ("2024-01-01-05:00", 1_704_085_200),
    ("2024-01-01T00:00:00Z", 1_704_067_200), ("2024-01-01T00:00:00+01:00", 1_704_063_600),
    ("2024-01-01T00Z", 1_704_067_200), ("2024-01-01T00:30+01:00", 1_704_065_400),
    ("2024-01-01T00:00:00.5Z", 1_704_067_200.5), ("1700000000", 1_700_000_000),
    ("1700000000.123", 1_700_000_000.123), ("+5", 5),
]


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS)
def test_parse_timestamp_follows_moby(value: str, expected: float) -> None:
    assert filters.parse_timestamp(value, NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize(("value", "message"), [
    ("xyz", 'failed to parse value as time or duration: "xyz"'),
    ("1d", 'failed to parse value as time or duration: "1d"'),
    ("1700000000.", 'failed to parse value as time or duration: "1700000000."'),
    ("2024-13-01", 'parsing time "2024-13-01": month out of range'),
    ("2024-02-30", 'parsing time "2024-02-30": day out of range'),
    ("2024-01-01T25:00", 'parsing time "2024-01-01T25:00": hour out of range'),
    ("2024-01-01T10:00:00z", 'parsing time "2024-01-01T10:00:00z" as "2006-01-02T15:04:05Z07:00": '
                             'cannot parse "z" as "Z07:00"'),
    ("2024-1-01", 'parsing time "2024-1-01" as "2006-01-02": cannot parse "1-01" as "01"'),
])
def test_parse_timestamp_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        filters.parse_timestamp(value, NOW)
    assert str(info.value) == message


def test_label_not_filter_keeps_only_images_matching_every_spec() -> None:
    prune = filters.prune_filter(filters.parse_filters(["label!=a", "label!=b"]), now=NOW)
    assert not prune.match(created=0, labels={"a": "1", "b": "2"})
    assert prune.match(created=0, labels={"a": "1"})  # moby's MatchKVList: all specs must hold to keep
    assert prune.match(created=0, labels={})


def test_prune_filter() -> None:
    prune = filters.prune_filter(filters.parse_filters(["until=1000", "label=k=v"]), now=NOW)
    assert prune.dangling_only and prune.until == 1000
    assert prune.match(created=999, labels={"k": "v"})
    assert not prune.match(created=1000, labels={"k": "v"})
    assert not prune.match(created=999, labels={"k": "w"})
    assert not filters.prune_filter(filters.parse_filters(["dangling=false"])).dangling_only
    assert not filters.prune_filter(filters.Filters(), all=True).dangling_only
    with pytest.raises(InvalidArgument, match=r"^more than one until filter specified$"):
        filters.prune_filter(filters.parse_filters(["until=1h", "until=2h"]))
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'reference'$"):
        filters.prune_filter(filters.parse_filters(["reference=x"]))


def test_cache_until() -> None:
    assert filters.cache_until(filters.Filters(), now=NOW) is None
    assert filters.cache_until(filters.parse_filters(["until=10s"]), now=NOW) == 1_699_999_990
    assert filters.cache_until(filters.parse_filters(["unused-for=10s"]), now=NOW) == 1_699_999_990
    with pytest.raises(InvalidArgument, match=r'^conflicting filters: "until" and "unused-for"$'):
        filters.cache_until(filters.parse_filters(["until=1h", "unused-for=1h"]))
    with pytest.raises(InvalidArgument, match=r"^filters expect only one value$"):
        filters.cache_until(filters.parse_filters(["until=1h", "until=2h"]))
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'until=x': failed to parse"):
        filters.cache_until(filters.parse_filters(["until=x"]))
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'label'$"):
        filters.cache_until(filters.parse_filters(["label=a"]))
