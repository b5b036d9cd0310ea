"""The engine's failure for one request, classified for the HTTP side (no vLLM here, so
the server's error module can name it without loading the engine)."""

from __future__ import annotations


class EngineError(Exception):
    """`status`: the HTTP status it deserves (4xx: the request; 503: a dead engine; 500)."""

    def __init__(
        self, message: str, status: int, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.param = message, status, code, param
