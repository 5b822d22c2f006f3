"""How the project's scripting commands report: a human sentence, or one JSON object on the last line."""

import json
from contextlib import contextmanager

from django.core.management.base import CommandError

from apps.core.errors import DomainError


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")


def emit(command, options: dict, payload: dict, text: str) -> None:
    if options.get("json"):
        command.stdout.write(json.dumps(payload))
    else:
        command.stdout.write(text)


@contextmanager
def domain_errors_as_command_errors():
    """A refused request exits non-zero with the service's message, never a traceback."""
    try:
        yield
    except DomainError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise CommandError(f"{exc.message}{field}") from exc
