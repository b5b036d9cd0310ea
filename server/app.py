"""The FastAPI app: wires routers, error handlers and the shared context; no logic here."""

from __future__ import annotations

from fastapi import FastAPI

from thinkctl.server.deps import AppContext
from thinkctl.server.errors import install_handlers
from thinkctl.server.routes import chat, health, models, responses


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="thinkctl", version="0.1.0")
    app.state.ctx = ctx
    install_handlers(app)
    app.include_router(chat.router)
    app.include_router(responses.router)
    app.include_router(models.router)
    app.include_router(health.router)
    return app
