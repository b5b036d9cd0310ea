"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

    APIError                      any error the API reports on purpose
    ├── InvalidRequest (400)      bad input: types, ranges, conflicts, too-long prompts
    ├── Unauthorized (401)        missing or wrong API key
    ├── NotFound (404)            unknown model or route
    ├── TooManyRequests (429)     over the admission limits (with Retry-After)
    ├── RequestTimeout (504)      the per-request time limit ran out (engine work aborted)
    ├── EngineUnavailable (503)   the engine is dead, shutting down, or no slot came free
    └── ServerError (500)         the engine failed on a valid request

`install_handlers` renders these, FastAPI's validation errors (bad JSON, wrong types,
out-of-range values) and Starlette's HTTP errors in that one shape; anything else is a
bug and becomes a 500 without internals in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import EngineError

log = logging.getLogger("thinkctl")

MSG_BAD_KEY = "Incorrect API key provided."
MSG_BAD_JSON = "The request body is not valid JSON."


def from_engine(exc: EngineError) -> APIError:
    """The engine's classified failure (engine/client.py) as the API reports it."""
    cls = {400: InvalidRequest, 503: EngineUnavailable}.get(exc.status)
    if cls is None:
        cls = ServerError if exc.status >= 500 else APIError
    err = cls(exc.message, exc.param, exc.code)
    err.status = exc.status
    return err


class APIError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code
        self.headers = headers


class InvalidRequest(APIError):
    pass


class Unauthorized(APIError):
    status = 401


class NotFound(APIError):
    status = 404


class TooManyRequests(APIError):
    status = 429
    type = "rate_limit_error"


class RequestTimeout(APIError):
    status = 504
    type = "timeout_error"


class EngineUnavailable(APIError):
    status = 503
    type = "service_unavailable_error"


class ServerError(APIError):
    status = 500
    type = "server_error"


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(err.message, err.type, err.param, err.code),
        status_code=err.status,
        headers=err.headers,
    )


def param_path(loc: Sequence[Any]) -> str | None:
    """("body", "messages", 0, "role") -> "messages[0].role"."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" in str(p) or "-" in str(p):  # pydantic's union-branch tags, not field names
            continue
        else:
            out += f".{p}" if out else str(p)
    return out or None


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return InvalidRequest(MSG_BAD_JSON, None, "invalid_json")
    param = param_path(first.get("loc", ()))
    msg = first.get("msg", "Invalid request.")
    return InvalidRequest(f"{param}: {msg}" if param else msg, param, "invalid_value")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = "not_found" if exc.status_code == 404 else None
        return JSONResponse(
            error_body(str(exc.detail), type_, None, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("Internal server error.", "server_error", None, None), status_code=500
        )
