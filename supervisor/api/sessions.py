"""/api/v1/chat/sessions: list, read, rename/archive, delete."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..chat import ChatService
from ..store import User
from .deps import require_user
from .errors import bool_field, bool_query, page_params, read_json, str_field


def _owned(request: Request, user: User) -> str:
    """The path's session id, if the user may see it; 404 otherwise (never reveal others')."""
    session_id = request.path_params["session_id"]
    chat: ChatService = request.app.state.chat
    if not chat.can_see_session(user, session_id):
        raise HTTPException(404, "session not found")
    return session_id


async def list_sessions(request: Request) -> JSONResponse:
    """The user's chat sessions (an admin's: everyone's), most recent first.
    ---
    summary: List sessions
    tags: [sessions]
    parameters:
      - {name: archived, in: query, schema: {type: boolean}}
      - {name: limit, in: query, schema: {type: integer, default: 50}}
      - {name: offset, in: query, schema: {type: integer, default: 0}}
    responses:
      "200": {description: "{sessions: [{session_id, title, archived, last_message, updated_at, message_count, active}]}"}
      "401": {description: Unauthorized.}
    """
    user = require_user(request)
    chat: ChatService = request.app.state.chat
    rows = chat.store.list_sessions(
        None if user.is_admin else user.id,
        archived=bool_query(request, "archived"),
        **page_params(request),
    )
    busy = {ex.session_id for ex in chat.engine.running()}
    for row in rows:
        row["active"] = row["session_id"] in busy
    # A session only subscribed to (claimed, never written to) is not listed yet.
    rows = [row for row in rows if row["message_count"] or row["active"]]
    return JSONResponse({"sessions": rows})


async def get_session(request: Request) -> JSONResponse:
    """A session's messages, and the seq to resume its live events after.
    ---
    summary: Read a session
    tags: [sessions]
    responses:
      "200": {description: "{messages: [...], last_seq, active}: subscribe with after_seq = last_seq"}
      "404": {description: No such session (or not yours).}
    """
    user = require_user(request)
    session_id = _owned(request, user)
    chat: ChatService = request.app.state.chat
    hub = request.app.state.hub
    # Read together, with no await between: the history and the resume point agree.
    messages = chat.store.list_messages(session_id)
    return JSONResponse({
        "session_id": session_id,
        "messages": messages,
        "last_seq": hub.replay_point(session_id),
        "active": bool(chat.engine.for_session(session_id)),
    })


async def patch_session(request: Request) -> JSONResponse:
    """Rename or (un)archive a session.
    ---
    summary: Update a session
    tags: [sessions]
    requestBody:
      content:
        application/json:
          schema: {type: object, properties: {title: {type: string}, archived: {type: boolean}}}
    responses:
      "200": {description: The session.}
      "404": {description: No such session (or not yours).}
    """
    user = require_user(request)
    session_id = _owned(request, user)
    body = await read_json(request)
    title = str_field(body, "title", required=False)
    if title is not None and len(title) > 200:
        raise HTTPException(400, "title is longer than 200 characters")
    archived = bool_field(body, "archived")
    chat: ChatService = request.app.state.chat
    session = chat.store.update_session(session_id, title=title, archived=archived)
    assert session is not None
    return JSONResponse({"session_id": session.session_id, "title": session.title,
                         "archived": session.archived, "updated_at": session.updated_at})


async def delete_session(request: Request) -> JSONResponse:
    """Delete a session and its messages (cancels its execution first).
    ---
    summary: Delete a session
    tags: [sessions]
    responses:
      "200": {description: "{status: ok}"}
      "404": {description: No such session (or not yours).}
    """
    user = require_user(request)
    session_id = _owned(request, user)
    chat: ChatService = request.app.state.chat
    await chat.cancel(user, session_id=session_id)
    chat.store.delete_session(session_id)
    return JSONResponse({"status": "ok"})


routes = [
    Route("/api/v1/chat/sessions", list_sessions, methods=["GET"]),
    Route("/api/v1/chat/sessions/{session_id:path}", get_session, methods=["GET"]),
    Route("/api/v1/chat/sessions/{session_id:path}", patch_session, methods=["PATCH"]),
    Route("/api/v1/chat/sessions/{session_id:path}", delete_session, methods=["DELETE"]),
]
