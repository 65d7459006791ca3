"""Errors the service raises; the app maps them to JSON ``{"detail", "field"}`` (and ``"errors"``, one
``{"field", "msg"}`` per problem, when there are several) with their status."""

from __future__ import annotations

__all__ = ["BadRequest", "Conflict", "Forbidden", "NotFound", "RateLimited", "ServeError", "TooLarge", "Unauthorized"]


class ServeError(Exception):
    """An error with an HTTP status, the request field at fault and (``headers``) answer headers such as
    ``WWW-Authenticate`` or ``Retry-After``."""

    status = 400

    def __init__(
        self,
        field: str | None,
        message: str,
        errors: list[dict[str, str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field
        self.message = message
        self.errors = errors
        self.headers = headers


class NotFound(ServeError):
    status = 404


class BadRequest(ServeError):
    status = 422


class TooLarge(ServeError):
    status = 413


class Unauthorized(ServeError):
    status = 401


class Forbidden(ServeError):
    status = 403


class Conflict(ServeError):
    status = 409


class RateLimited(ServeError):
    status = 429
