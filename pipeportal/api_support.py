"""What every router of the public API shares: API-key auth, error answers, cursors and list parameters."""

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db import OperationalError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from ninja import Query
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.security.apikey import APIKeyHeader
from pydantic import BaseModel

from apps.core.errors import DomainError, InvalidInput
from apps.core.http import client_ip
from apps.core.labels import MAX_LABEL_FILTERS
from apps.projects.choices import ActorKind
from apps.projects.principal import Principal
from apps.projects.services import authenticate_api_key

logger = logging.getLogger(__name__)

SCHEME = "API-KEY"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Shared parameter declarations (module-level so every list documents them the same way).
LABELS_QUERY = Query(None, description="key:value; repeat for several (all must match).")
LIMIT_QUERY = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
BAD_CURSOR = "cursor is not one this API handed out; start again without it."
# Cursors this API hands out stay under ~1,700 characters (a 100-character name of escaped emoji);
# anything much longer was not made here.
MAX_CURSOR_LENGTH = 4096


class NotUnicodeText(ValueError):
    """A JSON string holds a lone surrogate (`"\\ud800"`): valid JSON, but no text a database can store."""


def check_text(data: Any) -> Any:
    """`data` if every string in it (keys too) is encodable Unicode; NotUnicodeText otherwise.

    Iterative: json.loads already bounds the nesting, this walk must not add a recursion limit of its own.
    """
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise NotUnicodeText(item) from None
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return data


class StrictJSONParser(Parser):
    """JSON bodies whose strings can be stored: a lone surrogate is a 400, not a 500 at the database."""

    def parse_body(self, request: HttpRequest) -> Any:
        return check_text(json.loads(request.body))


class APIKeyAuth(APIKeyHeader):
    """`Authorization: API-KEY <id>.<secret>`. Any failure is the same 401, whatever part was wrong."""

    param_name = "Authorization"

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        scheme, _, raw = (key or "").strip().partition(" ")
        if scheme.upper() != SCHEME or not raw.strip():
            return None
        api_key = authenticate_api_key(raw)
        if api_key is None:
            return None
        return Principal(
            project_id=api_key.project_id,
            kind=ActorKind.API_KEY,
            name=api_key.name,
            role=api_key.role,
            source_ip=client_ip(request),
        )


class ErrorOut(BaseModel):
    detail: str
    field: str | None = None


class CommandIdOut(BaseModel):
    command_id: str


def _error(api, request, status: int, detail: str, field: str | None = None, **extra) -> HttpResponse:
    return api.create_response(request, {"detail": detail, "field": field, **extra}, status=status)


def _field_of(loc: tuple | list) -> str:
    """`("body", "payload", "git_path", "path")` → `git_path.path`; `("query", "limit")` → `limit`."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        source, parts = parts[0], parts[1:]
        # A body schema is one parameter (the function's argument name): the client never sees it.
        if source == "body":
            parts = parts[1:]
    return ".".join(parts)


# MySQL / MariaDB: 1205 lock wait timeout, 1213 deadlock (the transaction was rolled back); SQLite: locked.
BUSY_MYSQL_CODES = (1205, 1213)
BUSY_DETAIL = (
    "The database was busy with a concurrent change and this request was not applied; send it again."
)


def database_busy(exc: OperationalError) -> bool:
    """A lock conflict the same request would get past if sent again (not a database that is down)."""
    code = exc.args[0] if exc.args else None
    return code in BUSY_MYSQL_CODES or "database is locked" in str(exc)


def install_busy_handler(api) -> None:
    """A lock conflict answers 503 with Retry-After (the piped's client sends 5xx requests again), not a 500."""

    @api.exception_handler(OperationalError)
    def busy(request, exc: OperationalError):
        if not database_busy(exc):
            raise exc
        logger.warning("%s %s: database busy (%s); answered 503", request.method, request.path, exc)
        response = _error(api, request, 503, BUSY_DETAIL)
        response["Retry-After"] = "1"
        return response


def install_error_handlers(api) -> None:
    """Every refusal answers `{"detail": message, "field": name-or-null}` with the right status."""
    install_busy_handler(api)

    @api.exception_handler(DomainError)
    def domain_error(request, exc: DomainError):
        return _error(api, request, exc.status_code, exc.message, exc.field)

    @api.exception_handler(ValidationError)
    def validation_error(request, exc: ValidationError):
        errors = []
        for error in exc.errors:
            field = _field_of(error.get("loc", ())) or None
            message = error.get("msg", "invalid value") if field else "must be a JSON object"
            errors.append({"field": field, "message": message})
        detail = "; ".join(f"{e['field'] or 'The request body'}: {e['message']}" for e in errors)
        field = errors[0]["field"] if errors else None
        return _error(api, request, 400, detail, field, errors=errors)

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            detail = f"The request body is not valid JSON: {cause.msg} (line {cause.lineno}, column {cause.colno})."
            return _error(api, request, 400, detail)
        if isinstance(cause, UnicodeDecodeError):
            return _error(api, request, 400, "The request body is not UTF-8 text.")
        if isinstance(cause, NotUnicodeText):
            return _error(
                api,
                request,
                400,
                "The request body holds a string that is not valid Unicode (a lone surrogate escape such as "
                "\\ud800).",
            )
        if isinstance(cause, RecursionError):
            return _error(api, request, 400, "The request body is nested too deeply.")
        if exc.status_code == 401:
            # Never say whether the header, the key id or the secret was wrong.
            response = _error(api, request, 401, "Unauthorized: send `Authorization: API-KEY <key>`.")
            response["WWW-Authenticate"] = SCHEME
            return response
        return _error(api, request, exc.status_code, str(exc))


def principal_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


# --- Lists ----------------------------------------------------------------------------------------------


def encode_cursor(values: list[Any]) -> str:
    """An opaque token for "the rows after this one": the sort key of the page's last row."""
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    if not cursor:
        return None
    values = None
    if len(cursor) <= MAX_CURSOR_LENGTH:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            values = check_text(json.loads(base64.urlsafe_b64decode(padded.encode()).decode()))
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
            values = None
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) for v in values):
        raise InvalidInput(BAD_CURSOR, field="cursor")
    return values


def cursor_datetime(value: str) -> datetime:
    """A cursor's time: with a time zone (the API writes UTC), and one the database can compare."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(BAD_CURSOR, field="cursor") from None


def cursor_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(BAD_CURSOR, field="cursor") from None


def parse_labels(labels: list[str] | None) -> dict[str, str]:
    """`labels=env:prod&labels=team:web` → {"env": "prod", "team": "web"}."""
    result: dict[str, str] = {}
    for item in labels or []:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise InvalidInput(f"labels: {item!r} is not key:value.", field="labels")
        result[key.strip()] = value
    if len(result) > MAX_LABEL_FILTERS:
        raise InvalidInput(f"labels: at most {MAX_LABEL_FILTERS} filters.", field="labels")
    return result


def keyset_after(fields: tuple[str, str], values: tuple[Any, Any], descending: bool) -> Q:
    """Rows strictly after (a, b) in the list's order, written so that the index range stays usable."""
    first, second = fields
    a, b = values
    op = "lt" if descending else "gt"
    bound = "lte" if descending else "gte"
    return Q(**{f"{first}__{bound}": a}) & (
        Q(**{f"{first}__{op}": a}) | Q(**{first: a, f"{second}__{op}": b})
    )


def page(rows: list, limit: int, cursor_of) -> tuple[list, str | None]:
    """Split the `limit + 1` rows fetched into the page and the cursor of the next one."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(cursor_of(rows[-1]))
    return rows, None
