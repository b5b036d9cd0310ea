"""GET /v1/models: the one served model, with what thinkctl knows about its thinking."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from thinkctl.server import plan
from thinkctl.server.deps import get_ctx, require_api_key

router = APIRouter(dependencies=[Depends(require_api_key)])


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    ctx = get_ctx(request)
    info, cfg = ctx.info, ctx.config
    delims, conv = info.delims, info.think.conventions
    card = {
        "id": info.name,
        "object": "model",
        "created": ctx.created,
        "owned_by": "thinkctl",
        "max_model_len": info.max_model_len,
        "thinkctl": {
            "thinks": delims is not None,
            "think_delimiters": [conv.think_start, conv.think_end] if delims else None,
            "effort": plan.effort_card(cfg),
            "answer_reserve": plan.answer_reserve(cfg)._asdict(),  # its largest size
            "lynx": cfg.probe.describe() if cfg.probe else None,
            "preset": cfg.preset.describe() if cfg.preset else None,
            # Filled in where a request leaves them unset (then vLLM's neutral values).
            "sampling_defaults": plan.sampling_defaults(info, cfg),
        },
    }
    return {"object": "list", "data": [card]}
