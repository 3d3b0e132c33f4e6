"""Errors a user can act on. Each carries its HTTP status; one handler in web.app renders them.

AppError            400  the request cannot be served as sent
  BadRequest        400  a query parameter out of range (e.g. an admin date filter)
  NotFound          404  unknown, deleted, or another session's conversation
  Conflict          409  a reply is still being generated in this conversation
  TooLarge          413  a message or a name over its limit
  Invalid           422  an empty message or name, an unknown tier or outage mode
  TooMany           429  too many new conversations from one session; says when to try again

Each class's title names its kind of error, not one of its uses: the message says the rest.
"""

from __future__ import annotations


class AppError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(AppError):
    status = 400
    title = "Bad request"


class NotFound(AppError):
    status = 404
    title = "Not found"


class Conflict(AppError):
    status = 409
    title = "Busy"


class TooLarge(AppError):
    status = 413
    title = "Too large"


class Invalid(AppError):
    status = 422
    title = "Invalid request"


class TooMany(AppError):
    status = 429
    title = "Slow down"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


CONVERSATION_NOT_FOUND = (
    "This conversation does not exist, was deleted, or belongs to another browser session."
)
