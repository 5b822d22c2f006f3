"""How the project's scripting commands report: a human sentence, or one JSON object on the last line."""

import json
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import DatabaseError, connection

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
    """A refused request, a missing setting or an unusable database exits non-zero with a message, never a
    traceback. The services are atomic, so nothing is left half-written."""
    try:
        yield
    except DomainError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise CommandError(f"{exc.message}{field}") from exc
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc
    except DatabaseError as exc:
        raise CommandError(database_problem(exc)) from exc


def database_name() -> str:
    """Which database the command used, without its password: the SQLite file, or the server and name."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite file {config['NAME']}"
    host = config.get("HOST") or "localhost"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    # Not connection.display_name: on MySQL it connects to tell MariaDB apart, and there may be no server.
    vendor = {"mysql": "MySQL", "postgresql": "PostgreSQL"}.get(connection.vendor, connection.vendor)
    return f"{vendor} database {config['NAME']!r} on {host}{port}"


def database_problem(exc: DatabaseError) -> str:
    """Why a query failed, in the terms an operator acts on: no database, not migrated, or the error itself."""
    from django.db.migrations.executor import MigrationExecutor

    where = database_name()
    try:
        executor = MigrationExecutor(connection)
        missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return f"Cannot use the {where}: {exc}"
    if missing:
        return (
            f"The {where} lacks {len(missing)} migration(s): run `manage.py migrate` first "
            f"(the query failed with: {exc})."
        )
    return f"The {where} refused the request: {exc}"
