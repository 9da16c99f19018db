"""Chat operations shared by the WebSocket and HTTP routes: start a reply, cancel, scope.

A user sees and cancels only their own sessions and executions; an admin sees all.
"""

from __future__ import annotations

import asyncio

from agent_runner.protocol import ModelSettings
from agent_runner.providers import PROVIDER_NAMES
from agent_runner.tools import all_tools

from .config import Settings
from .engine import CancelOutcome, Engine, Execution, ExecutionRequest
from .store import Store, User

DEFAULT_SESSION = "web:chat"
MAX_CONTENT_CHARS = 256 * 1024
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class ChatError(Exception):
    """A refusal the client should see: code and message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class ChatService:
    def __init__(self, settings: Settings, store: Store, engine: Engine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine

    # -- scope ----------------------------------------------------------------------------

    def can_see_session(self, user: User, session_id: str) -> bool:
        session = self.store.get_session(session_id)
        return session is not None and (user.is_admin or session.user_id == user.id)

    def can_see_execution(self, user: User, ex: Execution) -> bool:
        return user.is_admin or ex.request.user_id == user.id

    def visible_live(self, user: User) -> list[Execution]:
        return [ex for ex in self.engine.running() if self.can_see_execution(user, ex)]

    # -- models and tools -----------------------------------------------------------------

    def model_settings(self, override: str | None = None) -> ModelSettings:
        s = self.settings
        provider = s.agents_defaults_provider
        model = s.agents_defaults_model
        if override:
            name, sep, rest = override.partition("/")
            if sep and name in PROVIDER_NAMES:
                provider, model = name, rest
            elif override in PROVIDER_NAMES:
                provider, model = override, ""
            else:
                model = override
        if provider not in PROVIDER_NAMES:
            raise ChatError("unknown_provider", f"unknown model provider {provider!r}")
        if not model:
            model = "offline" if provider == "offline" else DEFAULT_OPENAI_MODEL
        conf = s.provider(provider)
        return ModelSettings(
            provider=provider, model=model, api_key=conf.api_key, api_base=conf.api_base,
            max_tokens=s.agents_defaults_max_tokens, temperature=s.agents_defaults_temperature,
            max_tool_rounds=s.agents_defaults_max_tool_rounds,
        )

    def tool_names(self, web_search: bool | None = None, exclude: list[str] | None = None) -> list[str]:
        names = list(all_tools())
        if web_search is False:
            names = [n for n in names if n != "web_fetch"]
        if exclude:
            names = [n for n in names if n not in set(exclude)]
        return names

    # -- start and cancel -----------------------------------------------------------------

    def start(
        self,
        user: User,
        session_id: str | None,
        content: str,
        *,
        model: str | None = None,
        web_search: bool | None = None,
        exclude_tools: list[str] | None = None,
    ) -> Execution:
        session_id = session_id or DEFAULT_SESSION
        if not content.strip():
            raise ChatError("bad_request", "content is empty")
        if len(content) > MAX_CONTENT_CHARS:
            raise ChatError("too_large", f"content is longer than {MAX_CONTENT_CHARS} characters")
        if len(session_id) > 200:
            raise ChatError("bad_request", "session_id is longer than 200 characters")
        session = self.store.claim_session(session_id, user.id)
        if session.user_id != user.id and not user.is_admin:
            raise ChatError("forbidden", "this session belongs to another user", 403)
        if self.engine.for_session(session_id):
            raise ChatError("session_busy", "this session is already running an execution; cancel it or wait", 409)
        model_settings = self.model_settings(model)
        tools = self.tool_names(web_search, exclude_tools)
        self.store.add_message(session_id, "user", content)
        request = ExecutionRequest(
            session_id=session_id,
            user=user.username,
            user_id=session.user_id,
            messages=self.store.history_for_model(session_id),
            model=model_settings,
            tools=tools,
            user_message=content,
        )
        return self.engine.submit(request)

    def targets(
        self, user: User, *, session_id: str | None = None, execution_id: str | None = None, all_: bool = False
    ) -> list[Execution]:
        """The live executions a cancel request names, limited to what user may cancel."""
        if all_:
            found = self.engine.running()
        elif execution_id:
            ex = self.engine.get(execution_id)
            found = [ex] if ex is not None and ex.live else []
        elif session_id:
            found = self.engine.for_session(session_id)
        else:
            raise ChatError("bad_request", "give session_id, execution_id or all: true")
        return [ex for ex in found if self.can_see_execution(user, ex)]

    async def cancel(
        self,
        user: User,
        *,
        session_id: str | None = None,
        execution_id: str | None = None,
        all_: bool = False,
        grace: float | None = None,
        force: bool = False,
        wait: bool = True,
    ) -> list[CancelOutcome]:
        targets = self.targets(user, session_id=session_id, execution_id=execution_id, all_=all_)
        outcomes = await asyncio.gather(
            *(self.engine.cancel(ex.id, grace=grace, force=force, wait=wait) for ex in targets)
        )
        return [o for o in outcomes if o is not None]
