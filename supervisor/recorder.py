"""Makes executions durable: records and their messages, as the engine reports them."""

from __future__ import annotations

import logging

from .engine import Execution, State
from .engine.execution import iso
from .metrics import Metrics
from .store import Store

log = logging.getLogger("kakoclaw.recorder")


class Recorder:
    """The engine's observer: writes execution records and the reply's messages to SQLite."""

    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._known: set[str] = set()

    def _fields(self, ex: Execution) -> dict:
        return {
            "state": ex.state.value,
            "pid": ex.pid,
            "started_at": iso(ex.started_at),
            "ended_at": iso(ex.ended_at),
            "exit_code": ex.exit_code,
            "signal": ex.signal,
            "cancel_latency_ms": ex.cancel_latency_ms,
            "error": ex.error,
            "containment": ex.containment,
        }

    def on_state(self, ex: Execution) -> None:
        if ex.id not in self._known:
            self._known.add(ex.id)
            self.store.create_execution(
                id=ex.id, session_id=ex.session_id, user_id=ex.request.user_id or 0,
                created_at=iso(ex.created_at), **self._fields(ex),
            )
        else:
            self.store.update_execution(ex.id, **self._fields(ex))

    def on_finished(self, ex: Execution) -> None:
        self.on_state(ex)
        self._known.discard(ex.id)
        self.store.update_execution(ex.id, stderr_tail=ex.stderr_text() or None)
        if self.store.get_session(ex.session_id) is not None:
            for msg in ex.reply.transcript:
                self.store.add_message(
                    ex.session_id, msg["role"], msg.get("content") or "",
                    tool_calls=msg.get("tool_calls"), tool_call_id=msg.get("tool_call_id"),
                    name=msg.get("name"), execution_id=ex.id,
                )
            if ex.state is not State.CANCELED or ex.started_at is not None:
                self.store.add_message(
                    ex.session_id, "assistant", ex.reply.stored_content,
                    state=ex.state.value, execution_id=ex.id,
                )
        if self.metrics is not None:
            self.metrics.finished(ex)
