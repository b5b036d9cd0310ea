"""What routes share: the per-app context and the API-key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from thinkctl.engine.client import Engine
from thinkctl.errors import Unauthorized
from thinkctl.server.config import ServerConfig
from thinkctl.server.errors import MSG_BAD_KEY
from thinkctl.server.limits import Admission
from thinkctl.server.model_info import ModelInfo


@dataclass(frozen=True)
class AppContext:
    config: ServerConfig
    engine: Engine
    info: ModelInfo
    created: int  # start time, reported as the model's `created`
    admission: Admission


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def require_api_key(request: Request) -> None:
    keys = get_ctx(request).config.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # Constant-time comparison against every key (no early exit): the time taken must not
    # reveal how much of a key matched, nor which key.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized(MSG_BAD_KEY, None, "invalid_api_key")
