"""Domain errors raised by services; views and APIs turn them into HTTP answers."""


class DomainError(Exception):
    """A business rule refused the request. The message is safe to show to the caller."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    status_code = 400


class Forbidden(DomainError):
    """The caller can see the object but may not do this to it."""

    status_code = 403


class NotFound(DomainError):
    """The object does not exist, or it belongs to another project (we do not say which)."""

    status_code = 404


class Conflict(DomainError):
    """The object is not in a state that allows this (a stage not waiting, a second approval)."""

    status_code = 409


class Throttled(DomainError):
    """Too many attempts; try again later."""

    status_code = 429
