"""Health, models, tools, metrics and the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from agent_runner.tools import all_tools

from .deps import require_user

schemas = SchemaGenerator({
    "openapi": "3.0.3",
    "info": {"title": "KakoClaw", "version": "0.1.0",
             "description": "Chat with an agent whose every execution is a contained process."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    "security": [{"bearer": []}],
})


async def health(request: Request) -> JSONResponse:
    """Liveness, and how executions are contained here.
    ---
    summary: Health
    tags: [ops]
    security: []
    responses:
      "200": {description: "{status: ok, containment: {mode, reason}}"}
    """
    engine = request.app.state.engine
    return JSONResponse({
        "status": "ok",
        "containment": {"mode": engine.containment.name, "reason": engine.containment_reason},
        "runner_user": engine.identity.name or "(same as the server)",
    })


async def models(request: Request) -> JSONResponse:
    """Configured model providers.
    ---
    summary: Models
    tags: [ops]
    responses:
      "200": {description: "{current_model, providers: [{name, enabled, is_active, models: [{id, provider}]}]}"}
    """
    require_user(request)
    chat = request.app.state.chat
    current = chat.model_settings()
    providers = []
    for name in ("offline", "openai"):
        conf = chat.settings.provider(name)
        enabled = name == "offline" or bool(conf.api_key or conf.api_base)
        model_id = current.model if current.provider == name else chat.model_settings(name).model
        providers.append({
            "name": name, "enabled": enabled, "is_active": current.provider == name,
            "models": [{"id": model_id, "provider": name}],
        })
    return JSONResponse({"current_model": f"{current.provider}/{current.model}", "providers": providers})


async def tools(request: Request) -> JSONResponse:
    """The agent's tools.
    ---
    summary: Tools
    tags: [ops]
    responses:
      "200": {description: "{tools: [names]}"}
    """
    require_user(request)
    return JSONResponse({"tools": list(all_tools())})


async def metrics(request: Request) -> Response:
    """Prometheus metrics.
    ---
    summary: Metrics
    tags: [ops]
    responses:
      "200": {description: Prometheus text format.}
    """
    require_user(request)
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> JSONResponse:
    """This document.
    ---
    summary: OpenAPI document
    tags: [ops]
    security: []
    responses:
      "200": {description: The OpenAPI document.}
    """
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


routes = [
    Route("/api/v1/health", health, methods=["GET"]),
    Route("/api/v1/models", models, methods=["GET"]),
    Route("/api/v1/tools", tools, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
]
