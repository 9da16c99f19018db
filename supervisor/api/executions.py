"""/api/v1/executions: the history of execution records."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..chat import ChatService
from ..engine import TERMINAL, State
from ..store import parse_time
from .deps import require_user
from .errors import page_params

STATES = {s.value for s in State}


def _shape(record: dict, usernames: dict[int, str]) -> dict:
    out = dict(record)
    out["user"] = usernames.get(out.get("user_id"), "")
    if out.get("started_at") and out.get("ended_at"):
        out["duration_s"] = round((parse_time(out["ended_at"]) - parse_time(out["started_at"])).total_seconds(), 3)
    else:
        out["duration_s"] = None
    return out


async def list_executions(request: Request) -> JSONResponse:
    """Execution records, newest first (a user's own; an admin's: all).
    ---
    summary: Execution history
    tags: [executions]
    parameters:
      - {name: session_id, in: query, schema: {type: string}}
      - {name: state, in: query, schema: {type: string}}
      - {name: limit, in: query, schema: {type: integer, default: 50}}
      - {name: offset, in: query, schema: {type: integer, default: 0}}
    responses:
      "200": {description: "{executions: [{id, session_id, user, state, pid, created_at, started_at, ended_at,
        duration_s, exit_code, signal, cancel_latency_ms, error, containment}], total}"}
    """
    user = require_user(request)
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        raise HTTPException(400, f"state must be one of {', '.join(sorted(STATES))}")
    chat: ChatService = request.app.state.chat
    rows, total = chat.store.list_executions(
        None if user.is_admin else user.id,
        session_id=request.query_params.get("session_id") or None,
        state=state,
        **page_params(request),
    )
    names = {u.id: u.username for u in chat.store.list_users()}
    return JSONResponse({"executions": [_shape(r.to_dict(), names) for r in rows], "total": total})


async def get_execution(request: Request) -> JSONResponse:
    """One execution record, with its stderr tail.
    ---
    summary: One execution
    tags: [executions]
    responses:
      "200": {description: The execution record.}
      "404": {description: No such execution (or not yours).}
    """
    user = require_user(request)
    chat: ChatService = request.app.state.chat
    record = chat.store.get_execution(request.path_params["execution_id"])
    if record is None or not (user.is_admin or record.user_id == user.id):
        raise HTTPException(404, "execution not found")
    names = {u.id: u.username for u in chat.store.list_users()}
    out = _shape(record.to_dict(), names)
    out["live"] = record.state not in {s.value for s in TERMINAL}
    return JSONResponse(out)


routes = [
    Route("/api/v1/executions", list_executions, methods=["GET"]),
    Route("/api/v1/executions/{execution_id:path}", get_execution, methods=["GET"]),
]
