"""/api/v1/users: user management, for admins only."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import check_new_password, check_username, hash_password
from ..store import ROLES, LastAdmin, Store, UsernameTaken
from .deps import require_admin
from .errors import error_response, read_json, str_field


def _role(value: str | None) -> str | None:
    if value is not None and value not in ROLES:
        raise HTTPException(400, "role must be admin or user")
    return value


def _password(value: str) -> str:
    try:
        return check_new_password(value)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


async def list_users(request: Request) -> JSONResponse:
    """All users.
    ---
    summary: List users (admin)
    tags: [users]
    responses:
      "200":
        description: Every user, oldest first.
        content:
          application/json:
            schema:
              type: object
              properties:
                users:
                  type: array
                  items:
                    type: object
                    properties:
                      id: {type: integer}
                      username: {type: string}
                      role: {type: string, enum: [admin, user]}
                      created_at: {type: string, format: date-time}
      "401": {description: Missing, invalid, expired or revoked token.}
      "403": {description: The caller is not an admin.}
    """
    require_admin(request)
    store: Store = request.app.state.store
    return JSONResponse({"users": [u.public() for u in store.list_users()]})


async def create_user(request: Request) -> JSONResponse:
    """Add a user.
    ---
    summary: Create a user (admin)
    tags: [users]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [username, password]
            properties:
              username: {type: string, maxLength: 64, description: 1 to 64 characters without spaces or slashes.}
              password: {type: string, minLength: 8}
              role: {type: string, enum: [admin, user], default: user}
    responses:
      "201":
        description: Created.
        content:
          application/json:
            schema:
              type: object
              properties:
                id: {type: integer}
                username: {type: string}
                role: {type: string, enum: [admin, user]}
                created_at: {type: string, format: date-time}
      "400": {description: Bad body, username, role, or a password shorter than 8 characters.}
      "401": {description: Missing, invalid, expired or revoked token.}
      "403": {description: The caller is not an admin.}
      "409": {description: A user with that name exists.}
    """
    require_admin(request)
    body = await read_json(request)
    username = str_field(body, "username")
    password = _password(str_field(body, "password"))
    role = _role(str_field(body, "role", required=False, default="user"))
    try:
        check_username(username)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    store: Store = request.app.state.store
    if store.get_user_by_name(username) is not None:
        return error_response(409, f"user {username!r} already exists")
    password_hash = await run_in_threadpool(hash_password, password)
    try:
        user = store.create_user(username, password_hash, role or "user")
    except UsernameTaken as exc:
        return error_response(409, str(exc))
    return JSONResponse(user.public(), status_code=201)


async def update_user(request: Request) -> JSONResponse:
    """Change a user's password and/or role. A new password revokes the user's tokens.
    ---
    summary: Update a user (admin)
    tags: [users]
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            properties:
              password: {type: string, minLength: 8}
              role: {type: string, enum: [admin, user]}
    responses:
      "200":
        description: The updated user.
        content:
          application/json:
            schema:
              type: object
              properties:
                id: {type: integer}
                username: {type: string}
                role: {type: string, enum: [admin, user]}
                created_at: {type: string, format: date-time}
      "400": {description: Bad body, role, or a password shorter than 8 characters.}
      "401": {description: Missing, invalid, expired or revoked token.}
      "403": {description: The caller is not an admin.}
      "404": {description: No such user.}
      "409": {description: The change would demote the last admin.}
    """
    require_admin(request)
    user_id: int = request.path_params["id"]
    body = await read_json(request)
    password = str_field(body, "password", required=False)
    role = _role(str_field(body, "role", required=False))
    store: Store = request.app.state.store
    if store.get_user(user_id) is None:
        return error_response(404, "user not found")
    password_hash = await run_in_threadpool(hash_password, _password(password)) if password is not None else None
    try:
        user = store.update_user(user_id, password_hash=password_hash, role=role)
    except LastAdmin as exc:
        return error_response(409, str(exc))
    if user is None:
        return error_response(404, "user not found")
    return JSONResponse(user.public())


async def delete_user(request: Request) -> JSONResponse:
    """Delete a user with their sessions and messages.
    ---
    summary: Delete a user (admin)
    tags: [users]
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
    responses:
      "200":
        description: Deleted.
        content:
          application/json:
            schema: {type: object, properties: {status: {type: string, enum: [ok]}}}
      "401": {description: Missing, invalid, expired or revoked token.}
      "403": {description: The caller is not an admin.}
      "404": {description: No such user.}
      "409": {description: The user is the last admin.}
    """
    require_admin(request)
    store: Store = request.app.state.store
    try:
        deleted = store.delete_user(request.path_params["id"])
    except LastAdmin as exc:
        return error_response(409, str(exc))
    if not deleted:
        return error_response(404, "user not found")
    return JSONResponse({"status": "ok"})


routes = [
    Route("/api/v1/users", list_users, methods=["GET"]),
    Route("/api/v1/users", create_user, methods=["POST"]),
    Route("/api/v1/users/{id:int}", update_user, methods=["PUT"]),
    Route("/api/v1/users/{id:int}", delete_user, methods=["DELETE"]),
]
