# ruff: noqa: E501  (expected texts are Go's own long lines; wrapping them hides the comparison)
"""Go's documented cases for time.ParseDuration, Duration.String, time.Parse, Time.String and strconv's quoting."""

from __future__ import annotations

import datetime as dt

import pytest

from dockyard import goformat
from dockyard.goformat import HOUR, MICROSECOND, MILLISECOND, MINUTE, SECOND

MAX = (1 << 63) - 1


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("5s", 5 * SECOND), ("30s", 30 * SECOND), ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND), ("+5s", 5 * SECOND), ("-0", 0), ("+0", 0),
    ("5.0s", 5 * SECOND), ("5.6s", 5 * SECOND + 600 * MILLISECOND), ("5.s", 5 * SECOND),
    (".5s", SECOND // 2), ("1.0s", SECOND), ("1.00s", SECOND), ("1.004s", SECOND + 4 * MILLISECOND),
    ("1.0040s", SECOND + 4 * MILLISECOND), ("100.00100s", 100 * SECOND + MILLISECOND),
    ("10ns", 10), ("11us", 11 * MICROSECOND), ("12\u00b5s", 12 * MICROSECOND),
    ("12\u03bcs", 12 * MICROSECOND), ("13ms", 13 * MILLISECOND), ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE), ("16h", 16 * HOUR), ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MILLISECOND)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000), ("0.3333333333333333333h", 20 * MINUTE),
    ("9007199254740993ns", (1 << 53) + 1), ("9223372036854775807ns", MAX),
    ("9223372036854775.807us", MAX), ("9223372036s854ms775us807ns", MAX),
    ("-9223372036854775808ns", -MAX - 1), ("-9223372036854775.808us", -MAX - 1),
    ("-9223372036s854ms775us808ns", -MAX - 1), ("-2562047h47m16.854775808s", -MAX - 1),
    ("0.100000000000000000000h", 6 * MINUTE),
    ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert goformat.parse_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'),
    ("3", 'time: missing unit in duration "3"'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'),
    (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1.5.5s", 'time: missing unit in duration "1.5.5s"'),
    ("1h 2m", 'time: unknown unit "h " in duration "1h 2m"'),
    ("\udc85\udc85", 'time: invalid duration "\\x85\\x85"'),  # the bytes 0x85 0x85, not UTF-8
    ("\ufffd", 'time: invalid duration "\\xef\\xbf\\xbd"'),
    ("1\u00b5", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("9223372036854776us", 'time: invalid duration "9223372036854776us"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
    ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        goformat.parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1100, "1.1\u00b5s"), (2200 * MICROSECOND, "2.2ms"),
    (3300 * MILLISECOND, "3.3s"), (4 * MINUTE + 5 * SECOND, "4m5s"),
    (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"), (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"),
    (8 * MINUTE + 1, "8m0.000000001s"), (MAX, "2562047h47m16.854775807s"),
    (-MAX - 1, "-2562047h47m16.854775808s"), (HOUR, "1h0m0s"), (MILLISECOND, "1ms"), (-2 * MINUTE, "-2m0s"),
])
def test_format_duration(ns: int, text: str) -> None:
    assert goformat.format_duration(ns) == text


@pytest.mark.parametrize(("text", "quoted"), [
    ("", '""'), ("abc", '"abc"'), ('say "hi"\\', '"say \\"hi\\"\\\\"'), ("it's", '"it\'s"'),
    ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'), ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
    ("\u263a", '"\u263a"'), ("\u0080\u00a0", '"\\u0080\\u00a0"'), ("\U000e0001", '"\\U000e0001"'),
    ("\udcff", '"\\xff"'), ("\ud800", '"\ufffd"'),
])
def test_quote(text: str, quoted: str) -> None:
    assert goformat.quote(text) == quoted


@pytest.mark.parametrize(("n", "quoted"), [
    (65, "'A'"), (3, "'\\x03'"), (0, "'\\x00'"), (9, "'\\t'"), (39, "'\\''"), (34, "'\"'"),
    (92, "'\\\\'"), (0x263A, "'\u263a'"), (0x80, "'\\u0080'"), (0x10FFFF, "'\\U0010ffff'"),
    (0x110000, "'\ufffd'"), (-1, "'\ufffd'"), (0xD800, "'\ufffd'"),
])
def test_quote_rune(n: int, quoted: str) -> None:
    assert goformat.quote_rune(n) == quoted


def test_lists() -> None:
    assert goformat.quote_list(["/bin/sh", "-c", 'echo "a\tb"']) == '["/bin/sh" "-c" "echo \\"a\\tb\\""]'
    assert goformat.quote_list([]) == "[]"
    assert goformat.quote_list(["\x01"]) == '["\\x01"]'
    assert goformat.format_list(["/bin/sh", "-c"]) == "[/bin/sh -c]"
    assert goformat.format_list([]) == "[]"


UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(("layout", "value", "tz", "expected", "nanos"), [
    ("2006-01-02", "2024-01-01", UTC, dt.datetime(2024, 1, 1, tzinfo=UTC), 0),
    ("2006-01-02", "2024-01-01", IST, dt.datetime(2024, 1, 1, tzinfo=IST), 0),
    ("2006-01-02T15:04:05Z07:00", "2024-01-01T10:00:00+05:30", UTC, dt.datetime(2024, 1, 1, 10, tzinfo=IST), 0),
    ("2006-01-02T15:04:05Z07:00", "2024-01-01T10:00:00Z", IST, dt.datetime(2024, 1, 1, 10, tzinfo=UTC), 0),
    ("2006-01-02T15:04:05Z07:00", "2024-01-01T10:00:00.5Z", UTC, dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
     500_000_000),  # Go takes a fraction the layout does not name
    ("2006-01-02T15:04:05.999999999Z07:00", "2024-01-01T10:00:00.123456789123Z", UTC,
     dt.datetime(2024, 1, 1, 10, tzinfo=UTC), 123_456_789),
    ("2006-01-02T15", "2024-01-01T7", UTC, dt.datetime(2024, 1, 1, 7, tzinfo=UTC), 0),  # hour: 1 or 2 digits
])
def test_parse_time(layout: str, value: str, tz: dt.tzinfo, expected: dt.datetime, nanos: int) -> None:
    moment, ns = goformat.parse_time(layout, value, tz)
    assert (moment, moment.utcoffset(), ns) == (expected, expected.utcoffset(), nanos)


@pytest.mark.parametrize(("layout", "value", "message"), [
    ("2006-01-02", "x", 'parsing time "x" as "2006-01-02": cannot parse "x" as "2006"'),
    ("2006-01-02", "2024/01/01", 'parsing time "2024/01/01" as "2006-01-02": cannot parse "/01/01" as "-"'),
    ("2006-01-02", "2024-13-01", 'parsing time "2024-13-01": month out of range'),
    ("2006-01-02", "2023-02-29", 'parsing time "2023-02-29": day out of range'),
    ("2006-01-02", "2024-01-01x", 'parsing time "2024-01-01x": extra text: "x"'),
    ("2006-01-02T15:04", "2024-01-01T10:60", 'parsing time "2024-01-01T10:60": minute out of range'),
    ("2006-01-02T15:04:05Z07:00", "2024-01-01T10:00:00+0530",
     'parsing time "2024-01-01T10:00:00+0530" as "2006-01-02T15:04:05Z07:00": cannot parse "+0530" as "Z07:00"'),
])
def test_parse_time_errors(layout: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        goformat.parse_time(layout, value)
    assert str(info.value) == message


def test_format_time() -> None:
    assert goformat.format_time(dt.datetime(2026, 11, 27, 21, 12, 15, tzinfo=UTC)) == "2026-11-27 21:12:15 +0000 UTC"
    assert goformat.format_time(dt.datetime(2026, 11, 27, 21, 12, 15), 553393688) == (
        "2026-11-27 21:12:15.553393688 +0000 UTC")
    assert goformat.format_time(dt.datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=IST)) == (
        "2026-01-02 03:04:05.5 +0530 +0530")
