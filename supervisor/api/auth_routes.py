"""/api/v1/auth: login, the current user, and password change."""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import AuthError, Authenticator, RateLimited
from .deps import require_user
from .errors import error_response, read_json, str_field


def client_key(request: Request) -> str:
    """The rate-limit key of a request: the peer's IP address."""
    return request.client.host if request.client else "unknown"


async def login(request: Request) -> JSONResponse:
    """Exchange a username and password for a token.
    ---
    summary: Log in
    tags: [auth]
    security: []
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [username, password]
            properties:
              username: {type: string}
              password: {type: string}
    responses:
      "200":
        description: A token for the Authorization header (Bearer) or the token query parameter.
        content:
          application/json:
            schema:
              type: object
              properties:
                token: {type: string}
                expires_at: {type: string, format: date-time}
      "400": {description: The body is not a JSON object with string fields.}
      "401": {description: Invalid credentials.}
      "429":
        description: More than 5 attempts in a minute from this client; see Retry-After.
        headers:
          Retry-After: {schema: {type: integer}, description: Seconds to wait.}
    """
    body = await read_json(request)
    username = str_field(body, "username")
    password = str_field(body, "password")
    auth: Authenticator = request.app.state.auth
    try:
        token, expires_at = await run_in_threadpool(auth.login, username, password, client_key(request))
    except RateLimited as exc:
        return error_response(429, str(exc), {"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    except AuthError:
        return error_response(401, "invalid credentials")
    return JSONResponse({"token": token, "expires_at": expires_at})


async def me(request: Request) -> JSONResponse:
    """The user the token belongs to.
    ---
    summary: Current user
    tags: [auth]
    responses:
      "200":
        description: The current user.
        content:
          application/json:
            schema:
              type: object
              properties:
                id: {type: integer}
                username: {type: string}
                role: {type: string, enum: [admin, user]}
      "401": {description: Missing, invalid, expired or revoked token.}
    """
    user = require_user(request)
    return JSONResponse({"id": user.id, "username": user.username, "role": user.role})


async def change_password(request: Request) -> JSONResponse:
    """Change the current user's password. Every token issued before stops working; the
    answer carries a new one.
    ---
    summary: Change password
    tags: [auth]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [old_password, new_password]
            properties:
              old_password: {type: string}
              new_password: {type: string, minLength: 8}
    responses:
      "200":
        description: Changed. Old tokens are revoked; `token` replaces them.
        content:
          application/json:
            schema:
              type: object
              properties:
                status: {type: string, enum: [ok]}
                token: {type: string}
                expires_at: {type: string, format: date-time}
      "400": {description: Bad body, wrong old password, or a new password that is too short.}
      "401": {description: Missing, invalid, expired or revoked token.}
      "429": {description: Too many attempts in a minute.}
    """
    user = require_user(request)
    body = await read_json(request)
    old_password = str_field(body, "old_password")
    new_password = str_field(body, "new_password")
    auth: Authenticator = request.app.state.auth
    try:
        auth.limiter.hit(f"change-password:{user.id}")
        updated = await run_in_threadpool(auth.change_password, user, old_password, new_password)
    except RateLimited as exc:
        return error_response(429, str(exc), {"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    except (AuthError, ValueError) as exc:
        return error_response(400, str(exc))
    token, expires_at = auth.mint_token(updated)
    return JSONResponse({"status": "ok", "token": token, "expires_at": expires_at})


routes = [
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/me", me, methods=["GET"]),
    Route("/api/v1/auth/change-password", change_password, methods=["POST"]),
]
