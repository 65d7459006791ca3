"""Errors the service raises; the app maps them to JSON ``{"detail", "field"}`` (and ``"errors"``, one
``{"field", "msg"}`` per problem, when there are several) with their status."""

from __future__ import annotations

__all__ = ["BadRequest", "Conflict", "Forbidden", "NotFound", "ServeError", "TooLarge", "Unauthorized"]


class ServeError(Exception):
    """An error with an HTTP status and the request field at fault."""

    status = 400

    def __init__(self, field: str | None, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field
        self.message = message
        self.errors = errors


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
