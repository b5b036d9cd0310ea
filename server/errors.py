"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

The classes are drawn once, with every other error a user can see, in thinkctl/errors.py
(`APIError` and its subclasses, `EngineError`). `install_handlers` renders them,
FastAPI's validation errors (bad JSON, wrong types, out-of-range values) and Starlette's
HTTP errors in that one shape; anything else is a bug and becomes a 500 without internals
in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkctl.errors import APIError, InvalidRequest

log = logging.getLogger("thinkctl")

MSG_BAD_KEY = "Incorrect API key provided."
MSG_BAD_JSON = "The request body is not valid JSON."


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
    # A value that fits no branch of a union gets an error per branch: the deepest one
    # names the field that is wrong (a key inside a list item, not "not a string").
    first = max(errors, key=lambda e: len(e.get("loc", ())), default={})
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
