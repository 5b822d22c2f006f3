"""Building blocks shared by every config model: the base model, durations, percentages and tagged unions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, Union
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    PlainSerializer,
    Tag,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

MASK = "******"


class Model(BaseModel):
    """PipeCD's camelCase keys as aliases of snake_case attributes; unknown keys are refused.

    Files are validated by alias only (see loader.py), so `min_approver_num:` in YAML is an unknown key;
    Python code may construct models with either name.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=False,
        arbitrary_types_allowed=False,
    )


def fail(message: str, at: str | int | tuple | None = None) -> PydanticCustomError:
    """An error for a validator to raise; `at` names the key (relative to the model) it is about."""
    if at is not None and not isinstance(at, tuple):
        at = (at,)
    return PydanticCustomError("config", "{message}", {"message": message, "at": at})


def suggest(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str:
    """` (did you mean 'x'?)` when a close match exists."""
    choices = [c for c in choices if c != word]
    same_but_case = [c for c in choices if c.lower() == word.lower() and c != word]
    match = same_but_case or difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f" (did you mean {match[0]!r}?)" if match else ""


def mask_url_credentials(url: str) -> str:
    """`https://user:token@host/x` -> `https://user:******@host/x`.

    A Git remote or an address may carry a credential in its user part. Over HTTP(S) a user without a
    password is usually a token itself (GitHub takes `https://<token>@github.com/...`), so it is masked
    too; an SSH user (`ssh://git@host/...`) names an account, not a secret, and stays.
    """
    if not isinstance(url, str) or "@" not in url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
    except ValueError:
        return MASK
    if username is None and password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    if password is not None:
        userinfo = f"{username}:{MASK}"
    elif parts.scheme.lower() in ("http", "https"):
        userinfo = MASK
    else:
        return url
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def mask_text_credentials(text: str) -> str:
    """Every URL inside `text` (a Git error message, say) with its credentials masked."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url_credentials(m.group(0)), text)


# --- Durations ------------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_HINT = "expected a duration such as 150s, 5m, 1m30s or 6h"
# Go's time.Duration (what PipeCD reads these with) holds at most 2^63-1 nanoseconds, about 292 years;
# longer durations would also overflow the piped's deadline arithmetic (datetime stops at year 9999).
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


def parse_duration(value: Any) -> timedelta:
    """Go's duration syntax (`1h30m`, `1.5h`, `300ms`, `0`) as a timedelta; negative values are refused."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise fail(f"{_DURATION_HINT}; a negative duration makes no sense here")
        if value.total_seconds() > MAX_DURATION_SECONDS:
            raise fail(f"{_DURATION_HINT}; {value} is longer than the longest duration, about 292 years")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(f"{_DURATION_HINT}, got {value!r}")
    if isinstance(value, int | float):
        if value == 0:
            return timedelta(0)
        raise fail(f"{_DURATION_HINT}; the bare number {value!r} has no unit")
    text = value.strip()
    if text in ("0", "+0"):
        return timedelta(0)
    if text.startswith("-"):
        raise fail(f"{_DURATION_HINT}; a negative duration makes no sense here")
    text = text.removeprefix("+")
    if not text:
        raise fail(f"{_DURATION_HINT}, got {value!r}")
    pos, seconds = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise fail(f"{_DURATION_HINT}, got {value!r}")
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not seconds <= MAX_DURATION_SECONDS:  # also catches inf from thousands of digits
        raise fail(f"{_DURATION_HINT}; {value!r} is longer than the longest duration, about 292 years")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A timedelta in the form PipeCD writes (`1h30m`, `150ms`, `0s`)."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    if total < 1:
        return f"{round(total * 1000, 3):g}ms"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if minutes:
        out += f"{int(minutes)}m"
    if seconds:
        out += f"{round(seconds, 6):g}s"
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json-unless-none"),
]

# --- Percentages ----------------------------------------------------------------------------------------

_PERCENT_HINT = 'expected a percentage from 0 to 100 such as 30, 30.5 or "30%"'


def parse_percentage(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(f"{_PERCENT_HINT}, got {value!r}")
    number: float
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise fail(f"{_PERCENT_HINT}, got {value!r}") from None
    else:
        number = float(value)
    if not 0 <= number <= 100:
        raise fail(f"{_PERCENT_HINT}, got {value!r} (outside 0..100)")
    return number


Percentage = Annotated[float, BeforeValidator(parse_percentage)]

# --- Tagged unions --------------------------------------------------------------------------------------

UNKNOWN_TAG = "__unknown__"


def unknown_member(field: str, label: str, allowed: Iterable[str], hint: str = "") -> type[Model]:
    """A union member that only reports why its `field` value names nothing known."""
    allowed = sorted(allowed)

    class Unknown(Model):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _refuse(cls, data: Any) -> Any:
            if not isinstance(data, dict):
                raise fail(f"expected a mapping with {field}:, got {type(data).__name__}")
            value = data.get(field)
            if value is None:
                raise fail(f"{field} is required ({label}: one of {', '.join(allowed)})", at=field)
            if not isinstance(value, str):
                raise fail(f"{label} must be a string, got {value!r}", at=field)
            raise fail(
                f"unknown {label} {value!r}{suggest(value, allowed, 0.6)}; expected one of {', '.join(allowed)}{hint}",
                at=field,
            )

    Unknown.__name__ = f"Unknown_{field}"
    return Unknown


def tagged_union(field: str, members: dict[str, type], unknown: type) -> Any:
    """A union picked by the string in `field`; anything else lands on `unknown`, which explains itself."""

    def pick(value: Any) -> str:
        tag = value.get(field) if isinstance(value, dict) else getattr(value, field, None)
        return tag if isinstance(tag, str) and tag in members else UNKNOWN_TAG

    options = tuple(Annotated[cls, Tag(tag)] for tag, cls in members.items())
    return Annotated[Union[(*options, Annotated[unknown, Tag(UNKNOWN_TAG)])], Discriminator(pick)]
