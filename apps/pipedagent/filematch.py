"""File patterns as PipeCD reads them in `trigger.onCommit.paths/ignores` and `skipOn.paths`.

PipeCD uses Docker's `.dockerignore` matcher: `*` and `?` stay inside one directory, `**` crosses
directories, `[...]` classes, `\\` escapes, a leading `!` excludes, and a pattern naming a directory also
matches every file below it. Patterns are relative to the repository root.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


class PatternError(ValueError):
    pass


def _translate(pattern: str) -> str:
    """The pattern as an anchored regular expression (Docker's own translation, character by character)."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                out.append(".*" if i + 1 >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1 or end == i + 1:
                raise PatternError(f"unterminated character class in {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            if body.startswith("-") or body.endswith("-"):
                raise PatternError(f"bad character range in {pattern!r}")
            out.append(f"[{body}]")
            i = end
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                raise PatternError(f"trailing backslash in {pattern!r}")
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern
    depth: int


def _compile(raw: str) -> tuple[_Pattern | None, bool]:
    text = raw.strip()
    if not text:
        return None, False
    negative = text.startswith("!")
    if negative:
        text = text[1:]
        if not text:
            raise PatternError('illegal exclusion pattern: "!"')
    text = posixpath.normpath(text)
    try:
        regex = re.compile(_translate(text))
    except re.error as exc:
        raise PatternError(f"bad pattern {raw!r}: {exc}") from None
    return _Pattern(text, regex, len(text.split("/"))), negative


class PatternMatcher:
    def __init__(self, patterns: list[str]):
        self.patterns: list[_Pattern] = []
        self.exclusions: list[_Pattern] = []
        for raw in patterns:
            pattern, negative = _compile(raw)
            if pattern is None:
                continue
            (self.exclusions if negative else self.patterns).append(pattern)

    @staticmethod
    def _any(path: str, patterns: list[_Pattern]) -> bool:
        parent = posixpath.dirname(path)
        parent_dirs = parent.split("/") if parent else []
        for pattern in patterns:
            if pattern.regex.match(path):
                return True
            # A pattern naming a directory matches the files below it.
            if (
                parent
                and pattern.depth <= len(parent_dirs)
                and pattern.regex.match("/".join(parent_dirs[: pattern.depth]))
            ):
                return True
        return False

    def matches(self, path: str) -> bool:
        path = posixpath.normpath(path)
        if path == ".":
            return False
        if self._any(path, self.exclusions):
            return False
        return self._any(path, self.patterns)

    def matches_any(self, paths: list[str]) -> bool:
        return any(self.matches(p) for p in paths)
