"""/api/v1/chat/cancel and /api/v1/chat/active (the original's routes, extended)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..chat import ChatError, ChatService
from .deps import require_admin, require_user
from .errors import bool_field, error_response, number_field, read_json, str_field


async def cancel(request: Request) -> JSONResponse:
    """Cancel executions: SIGTERM to every process, SIGKILL after the grace.
    ---
    summary: Cancel executions of a session, one execution, or all
    tags: [chat]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            properties:
              session_id: {type: string}
              execution_id: {type: string}
              all: {type: boolean}
              grace_s: {type: number, description: seconds between SIGTERM and SIGKILL (default 3)}
              force: {type: boolean, description: SIGKILL at once}
              wait: {type: boolean, description: answer when the process tree is empty (default true)}
    responses:
      "200":
        description: What was canceled and how it ended.
        content:
          application/json:
            schema:
              type: object
              properties:
                canceled: {type: integer}
                message: {type: string}
                executions:
                  type: array
                  items:
                    type: object
                    properties:
                      id: {type: string}
                      state: {type: string}
                      signal: {type: string, nullable: true}
                      latency_ms: {type: number, nullable: true}
      "400": {description: Bad body.}
      "401": {description: Unauthorized.}
    """
    user = require_user(request)
    body = await read_json(request)
    grace = number_field(body, "grace_s")
    if grace is not None and not 0 <= grace <= 600:
        return error_response(400, "grace_s must be between 0 and 600")
    chat: ChatService = request.app.state.chat
    try:
        outcomes = await chat.cancel(
            user,
            session_id=str_field(body, "session_id", required=False),
            execution_id=str_field(body, "execution_id", required=False),
            all_=bool_field(body, "all", default=False),
            grace=grace,
            force=bool_field(body, "force", default=False),
            wait=bool_field(body, "wait", default=True),
        )
    except ChatError as exc:
        return error_response(exc.status, exc.message)
    return JSONResponse({
        "canceled": len(outcomes),
        "message": f"Canceled {len(outcomes)} execution(s)",
        "executions": [o.as_dict() for o in outcomes],
    })


async def active(request: Request) -> JSONResponse:
    """Running and queued executions with their live process trees.
    ---
    summary: Active executions, from the live process table
    tags: [chat]
    responses:
      "200":
        description: "id, session_id, started_at, duration (the original's fields), then state, user, pid,
          cpu_percent, rss_bytes and processes [{pid, ppid, name, cmdline, status, cpu_percent, rss_bytes}]"
        content:
          application/json:
            schema: {type: array, items: {type: object}}
      "401": {description: Unauthorized.}
    """
    user = require_user(request)
    chat: ChatService = request.app.state.chat
    return JSONResponse(await chat.engine.active(chat.visible_live(user)))


async def orphans(request: Request) -> JSONResponse:
    """Processes of this server's units that belong to no live execution (admin only).
    ---
    summary: Orphaned processes
    tags: [chat]
    responses:
      "200": {description: "{orphans: [{pid, ppid, name, cmdline, status, cpu_percent, rss_bytes}]}"}
      "403": {description: Not an admin.}
    """
    require_admin(request)
    engine = request.app.state.chat.engine
    return JSONResponse({"orphans": await asyncio.to_thread(engine.orphans)})


routes = [
    Route("/api/v1/chat/orphans", orphans, methods=["GET"]),
    Route("/api/v1/chat/cancel", cancel, methods=["POST"]),
    Route("/api/v1/chat/active", active, methods=["GET"]),
]
