"""GET /health (200 while the engine is alive, else 503) and GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from thinkctl.errors import EngineUnavailable
from thinkctl.server.deps import get_ctx
from thinkctl.server.errors import error_response

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> Response:
    try:
        await get_ctx(request).engine.check_health()
    except Exception:
        return error_response(EngineUnavailable("The engine is not running.", None, "engine_dead"))
    return Response(status_code=200)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
