"""The event log of each session and the fan-out to its subscribers.

Every event gets an envelope (seq, session_id, execution_id, ts) and is encoded to JSON
once; subscribers receive the encoded text. A reconnecting client passes after_seq and
gets exactly what it missed, then live events; if what it missed is no longer kept it
gets a resync. Each subscriber has a bounded queue: one that falls behind is cut off
with a resync and never slows the publisher or the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class LoggedEvent:
    seq: int
    execution_id: str
    text: str  # the encoded envelope+event


RESYNC = "resync"


class Subscription:
    """One subscriber's view of one session: a bounded queue of encoded events."""

    def __init__(self, hub: "Hub", session_id: str, maxsize: int) -> None:
        self.hub = hub
        self.session_id = session_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.cut_off = False

    def offer(self, text: str) -> None:
        if self.cut_off:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._cut_off()

    def _cut_off(self) -> None:
        # Drop what it has not read and tell it to recover over HTTP + after_seq.
        self.cut_off = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(self.hub.resync_text(self.session_id, "subscriber fell behind"))
        self.hub.unsubscribe(self)
        self.hub.stats.cutoffs += 1

    async def get(self) -> str:
        return await self.queue.get()

    def get_batch(self, first: str, limit: int = 256) -> list[str]:
        """first plus whatever else is already queued (for batched socket writes)."""
        batch = [first]
        while len(batch) < limit and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    def close(self) -> None:
        self.hub.unsubscribe(self)


@dataclass
class SessionLog:
    next_seq: int
    events: deque[LoggedEvent] = field(default_factory=deque)
    nbytes: int = 0
    running: set[str] = field(default_factory=set)  # executions still producing events
    first_seq_of: dict[str, int] = field(default_factory=dict)  # execution -> its first seq
    last_activity: float = field(default_factory=time.monotonic)
    subscribers: set[Subscription] = field(default_factory=set)

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1


@dataclass
class HubStats:
    published: int = 0
    cutoffs: int = 0


class Hub:
    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        keep_finished_s: float = 300.0,
        queue_size: int = 1024,
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.keep_finished_s = keep_finished_s
        self.queue_size = queue_size
        # Seqs start from the clock, so they keep increasing across supervisor restarts:
        # a client's after_seq from a previous process is then older than anything kept.
        self._seq_base = time.time_ns() // 1000
        self.logs: dict[str, SessionLog] = {}
        self.stats = HubStats()

    def _log(self, session_id: str) -> SessionLog:
        log = self.logs.get(session_id)
        if log is None:
            log = self.logs[session_id] = SessionLog(next_seq=max(self._seq_base, int(time.time_ns() // 1000)))
        return log

    def last_seq(self, session_id: str) -> int:
        return self._log(session_id).last_seq

    def replay_point(self, session_id: str) -> int:
        """The seq a client that just loaded the session's history should resume after.

        Stored history holds finished replies; a running execution's events are not in it,
        so the resume point is just before that execution's first event.
        """
        log = self._log(session_id)
        starts = [log.first_seq_of[e] for e in log.running if e in log.first_seq_of]
        return min(starts) - 1 if starts else log.last_seq

    # -- publishing -------------------------------------------------------------------

    def begin(self, session_id: str, execution_id: str) -> None:
        self._log(session_id).running.add(execution_id)

    def end(self, session_id: str, execution_id: str) -> None:
        log = self._log(session_id)
        log.running.discard(execution_id)
        log.last_activity = time.monotonic()

    def publish(self, session_id: str, execution_id: str, event: dict) -> int:
        log = self._log(session_id)
        seq = log.next_seq
        log.next_seq += 1
        envelope = {**event, "seq": seq, "session_id": session_id, "execution_id": execution_id, "ts": _now_iso()}
        text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
        entry = LoggedEvent(seq, execution_id, text)
        log.events.append(entry)
        log.first_seq_of.setdefault(execution_id, seq)
        log.nbytes += len(text)
        log.last_activity = time.monotonic()
        while len(log.events) > 1 and (len(log.events) > self.max_events or log.nbytes > self.max_bytes):
            old = log.events.popleft()
            log.nbytes -= len(old.text)
        self.stats.published += 1
        for sub in tuple(log.subscribers):
            sub.offer(text)
        return seq

    def publish_many(self, session_id: str, execution_id: str, events: Iterable[dict]) -> None:
        for event in events:
            self.publish(session_id, execution_id, event)

    def resync_text(self, session_id: str, reason: str) -> str:
        return json.dumps(
            {
                "type": RESYNC,
                "reason": reason,
                "session_id": session_id,
                "seq": self._log(session_id).last_seq,
                "ts": _now_iso(),
            }
        )

    # -- subscribing ------------------------------------------------------------------

    def subscribe(self, session_id: str, after_seq: int | None = None) -> Subscription:
        """Subscribe; the queue is pre-filled with the replay.

        after_seq None: replay the running execution(s) from their first event.
        after_seq given: exactly the events after it, or a resync if some are gone.
        """
        log = self._log(session_id)
        sub = Subscription(self, session_id, self.queue_size)
        if after_seq is None:
            after_seq = self.replay_point(session_id)
        if after_seq < log.last_seq:
            first_kept = log.events[0].seq if log.events else log.next_seq
            if after_seq + 1 < first_kept or after_seq > log.last_seq:
                sub.offer(self.resync_text(session_id, "requested events are no longer kept"))
            else:
                missed = [e.text for e in log.events if e.seq > after_seq]
                if len(missed) >= self.queue_size:
                    sub.offer(self.resync_text(session_id, "too many missed events to replay"))
                else:
                    for text in missed:
                        sub.offer(text)
        elif after_seq > log.last_seq:
            sub.offer(self.resync_text(session_id, "unknown after_seq (from an earlier server run?)"))
        log.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        log = self.logs.get(sub.session_id)
        if log is not None:
            log.subscribers.discard(sub)

    def subscriber_count(self) -> int:
        return sum(len(log.subscribers) for log in self.logs.values())

    def gc(self) -> None:
        """Forget finished sessions' events after keep_finished_s; keep their seq counter."""
        now = time.monotonic()
        for log in self.logs.values():
            if not log.running and log.events and now - log.last_activity > self.keep_finished_s:
                log.events.clear()
                log.nbytes = 0
                log.first_seq_of.clear()
