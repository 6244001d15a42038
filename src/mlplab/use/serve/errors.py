"""The one error type a request handler raises: an HTTP status and a one-line message for the client."""

from __future__ import annotations


class ClientError(Exception):
    """Something the client sent cannot be used; answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
