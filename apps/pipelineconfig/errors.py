"""What a config file got wrong: `Problem` (one finding, with file, line, column and key path) and `ConfigError`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding in one file. `line`/`col` are 1-based; 0 means the finding is about the whole file."""

    file: str
    line: int
    col: int
    path: str
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def as_dict(self) -> dict:
        return asdict(self)

    def as_error(self) -> Problem:
        """The same finding as an error (`--strict` turns warnings into errors)."""
        if self.severity == ERROR:
            return self
        return Problem(self.file, self.line, self.col, self.path, ERROR, self.message)


class ConfigError(Exception):
    """A file cannot be used. `problems` holds every error found in it (and the warnings beside them)."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.severity != ERROR))
        super().__init__(self.__str__())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def __str__(self) -> str:
        errors = self.errors or self.problems
        files = sorted({p.file for p in errors})
        count = len(errors)
        head = f"{count} problem{'s' if count != 1 else ''} in {', '.join(files)}"
        return "\n".join([head, *(f"  {p}" for p in errors)])
