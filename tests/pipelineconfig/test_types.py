"""Durations and percentages: the forms PipeCD's files use, and clear refusals of the rest."""

from datetime import timedelta

import pytest
from pydantic_core import PydanticCustomError

from apps.pipelineconfig import format_duration, parse_duration, parse_percentage


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("150s", timedelta(seconds=150)),
        ("6h", timedelta(hours=6)),
        ("1m30s", timedelta(minutes=1, seconds=30)),
        ("1h0m0s", timedelta(hours=1)),  # Go's String() form
        ("1.5h", timedelta(minutes=90)),
        ("300ms", timedelta(milliseconds=300)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
        ("10us", timedelta(microseconds=10)),
        ("10µs", timedelta(microseconds=10)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_it_reads_go_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (150, "the bare number 150 has no unit"),
        ("150", "got '150'"),
        ("5 minutes", "got '5 minutes'"),
        ("1d", "got '1d'"),
        ("-5m", "a negative duration makes no sense here"),
        ("", "got ''"),
        (True, "got True"),
        ([1], "got [1]"),
    ],
)
def test_it_refuses_what_is_not_a_duration(value, message):
    with pytest.raises(PydanticCustomError) as caught:
        parse_duration(value)
    assert message in str(caught.value)
    assert str(caught.value).startswith("expected a duration such as 150s, 5m, 1m30s or 6h")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=6), "6h"),
        (timedelta(minutes=1, seconds=30), "1m30s"),
        (timedelta(seconds=150), "2m30s"),
        (timedelta(milliseconds=300), "300ms"),
        (timedelta(0), "0s"),
    ],
)
def test_it_writes_durations_back_in_go_form(value, text):
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30.0),
        (30.5, 30.5),
        ("30%", 30.0),
        ("30.5%", 30.5),
        ("30", 30.0),
        (0, 0.0),
        (100, 100.0),
        ("100 %", 100.0),
    ],
)
def test_it_reads_percentages(value, expected):
    assert parse_percentage(value) == expected


@pytest.mark.parametrize(
    ("value", "got"), [(-1, "got -1"), (100.5, "got 100.5"), ("abc%", "got 'abc%'"), (True, "got True")]
)
def test_it_refuses_percentages_outside_0_to_100(value, got):
    with pytest.raises(PydanticCustomError) as caught:
        parse_percentage(value)
    assert got in str(caught.value)
