"""Times: those sent by clients (ISO 8601 text or datetimes), checked to be ones every supported database
stores; those the control plane sends back, read; and durations written for people."""

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from .errors import InvalidInput

# MySQL's and MariaDB's DATETIME range; SQLite takes wider, but a time stored must read back the same on all.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
OUT_OF_RANGE = "must be a time between the years 1000 and 9999 (UTC)"


def storable(moment: datetime) -> datetime:
    """`moment` in UTC (a time without a zone is taken as UTC); ValueError when no database can keep it.

    `9999-12-31T23:59:59-01:00` is a valid ISO 8601 time whose UTC falls in the year 10000: converting it
    raised OverflowError deep in the database adapter.
    """
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(OUT_OF_RANGE)
    return moment


def parse_time(value, field: str) -> datetime:
    """A client's time from a free-form JSON value: InvalidInput naming `field` unless it is one we can store."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:  # well formed but no such day or hour: 2020-13-45T00:00:00
            parsed = None
    else:
        parsed = None
    if parsed is None:
        raise InvalidInput(f"{field} is not an ISO 8601 time.", field=field)
    try:
        return storable(parsed)
    except ValueError as exc:
        raise InvalidInput(f"{field} {exc}.", field=field) from None


def read_time(value: Any) -> datetime | None:
    """A time the control plane wrote (ISO 8601, `Z` or an offset; none means UTC), or None when empty."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_seconds(seconds: float, *, coarse: bool = False) -> str:
    """`0.5s`, `45s`, `3m05s`, `1h02m05s`. `coarse`, for how long a whole deployment took: whole seconds
    only, and none past an hour (`1h02m`)."""
    if not coarse and 0 < seconds < 1:
        return f"{seconds:g}s"
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if coarse else f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
