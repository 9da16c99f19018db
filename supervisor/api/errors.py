"""JSON errors: every failure the API reports is `{"error": "<message>"}`.

`exception_handlers` goes to `Starlette(exception_handlers=...)`: HTTPException (raised by
routes, or by Starlette for 404/405) keeps its status and message; anything unexpected is
logged with its traceback and answered 500 with a generic message. `read_json` and the
field helpers turn bad request bodies into 400s that say what is wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

log = logging.getLogger("kakoclaw.api")

MAX_JSON_BODY = 1024 * 1024
DRAIN_LIMIT = 16 * 1024 * 1024


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers) if headers else None)


async def http_exception_handler(conn: HTTPConnection, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def unexpected_error_handler(conn: HTTPConnection, exc: Exception) -> JSONResponse:
    log.error("unhandled error in %s %s", conn.scope.get("method", "WS"), conn.url.path, exc_info=exc)
    return error_response(500, "internal server error")


exception_handlers: dict[Any, Any] = {
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}


async def read_json(request: Request, max_bytes: int = MAX_JSON_BODY) -> dict[str, Any]:
    """The request body as a JSON object; HTTPException 400 "invalid JSON body" if it is
    not one (413 if it is larger than `max_bytes`)."""
    body = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= max_bytes:
            body += chunk
        elif received > DRAIN_LIMIT:
            break  # stop reading: the client sees the 413 or a reset
    if received > max_bytes:
        # Read (and dropped) the rest first, so that the client, still sending, gets the answer.
        raise HTTPException(413, "request body too large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "invalid JSON body") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "invalid JSON body")
    return data


_MISSING = object()


def _field(body: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str, required: bool, default: Any) -> Any:
    value = body.get(name, _MISSING)
    if value is _MISSING or (value is None and not required):
        if required:
            raise HTTPException(400, f"{name} is required")
        return default
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        raise HTTPException(400, f"{name} must be {what}")
    return value


def str_field(body: Mapping[str, Any], name: str, *, required: bool = True, default: str | None = None) -> Any:
    """`body[name]` as a string: 400 "<name> is required" / "<name> must be a string".
    An optional field that is absent or null gives `default`."""
    return _field(body, name, (str,), "a string", required, default)


def bool_field(body: Mapping[str, Any], name: str, *, required: bool = False, default: bool | None = None) -> Any:
    """`body[name]` as a boolean (400 "<name> must be a boolean")."""
    return _field(body, name, (bool,), "a boolean", required, default)


def number_field(body: Mapping[str, Any], name: str, *, required: bool = False, default: float | None = None) -> Any:
    """`body[name]` as an int or float, not a boolean (400 "<name> must be a number")."""
    return _field(body, name, (int, float), "a number", required, default)


def int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return value


def bool_query(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise HTTPException(400, f"{name} must be true or false")


def page_params(request: Request) -> dict[str, int]:
    """`limit` (1-500, default 50) and `offset` from the query string."""
    return {"limit": int_query(request, "limit", 50, 1, 500), "offset": int_query(request, "offset", 0, 0, 10**9)}
