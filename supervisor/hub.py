"""The event log of each session and the fan-out to its subscribers.

Every event gets an envelope (seq, session_id, execution_id, ts) and is encoded to JSON
once. The session's log is the one buffer: a subscriber is a cursor into it, so
publishing costs the same for one subscriber or a hundred, and a subscriber that stops
reading holds nothing. A subscriber whose cursor falls more than `max_lag` events
behind, or behind what the log still keeps, is cut off with a resync and recovers by
reloading the history and subscribing with after_seq.

Delivery coalesces consecutive `stream` deltas of one execution into one frame (still a
valid `stream` event): `seq` is the last delta's, `seq_first` the first's.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class LoggedEvent:
    seq: int
    execution_id: str
    ts: str
    text: str  # the encoded envelope + event
    delta: str | None = None  # for `stream` events: the content, so deltas can be merged


RESYNC = "resync"


class SessionLog:
    """A window of a session's events with contiguous seqs, bounded in count and bytes."""

    def __init__(self, first_seq: int) -> None:
        self.next_seq = first_seq
        self._events: list[LoggedEvent] = []
        self._start = 0  # index of the oldest kept event in _events
        self.nbytes = 0
        self.running: set[str] = set()  # executions still producing events
        self.first_seq_of: dict[str, int] = {}  # execution -> its first seq
        self.last_activity = time.monotonic()
        self.subscribers: set[Subscription] = set()
        self._grown = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def first_kept(self) -> int:
        """The oldest seq still kept (next_seq when nothing is)."""
        return self._events[self._start].seq if self._start < len(self._events) else self.next_seq

    def __len__(self) -> int:
        return len(self._events) - self._start

    def append(self, entry: LoggedEvent, max_events: int, max_bytes: int) -> None:
        self._events.append(entry)
        self.nbytes += len(entry.text)
        while len(self) > 1 and (len(self) > max_events or self.nbytes > max_bytes):
            self.nbytes -= len(self._events[self._start].text)
            self._start += 1
        if self._start > 4096 and self._start * 2 > len(self._events):
            del self._events[: self._start]  # compact now and then, not on every eviction
            self._start = 0
        self._grown.set()
        self._grown = asyncio.Event()

    def since(self, seq: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` kept events from seq on (seq must be >= first_kept)."""
        i = self._start + (seq - self.first_kept)
        return self._events[i : i + limit]

    def clear(self) -> None:
        self._events.clear()
        self._start = 0
        self.nbytes = 0
        self.first_seq_of.clear()

    async def wait_beyond(self, seq: int) -> None:
        while self.last_seq < seq:
            await self._grown.wait()


class Subscription:
    """One subscriber's cursor into one session's log."""

    def __init__(self, hub: "Hub", log: SessionLog, session_id: str, next_seq: int) -> None:
        self.hub = hub
        self.log = log
        self.session_id = session_id
        self.cursor = next_seq  # the next seq this subscriber should receive
        self.cut_off = False
        self._pending_resync: str | None = None

    def _resync(self, reason: str) -> list[str]:
        self.cut_off = True
        self.hub.unsubscribe(self)
        self.hub.stats.cutoffs += 1
        return [self.hub.resync_text(self.session_id, reason)]

    def ready(self, limit: int | None = None) -> list[str]:
        """The frames available now (coalesced), without waiting; [] if none."""
        if self._pending_resync is not None:
            text, self._pending_resync = self._pending_resync, None
            self.cut_off = True
            self.hub.unsubscribe(self)
            return [text]
        if self.cut_off:
            return []
        log = self.log
        if self.cursor > log.last_seq:
            return []
        if self.cursor < log.first_kept:
            return self._resync("requested events are no longer kept")
        if log.last_seq - self.cursor + 1 > self.hub.max_lag:
            return self._resync("subscriber fell behind")
        entries = log.since(self.cursor, limit or self.hub.max_lag)
        self.cursor = entries[-1].seq + 1
        return coalesce(entries, self.session_id)

    async def next_batch(self, limit: int | None = None) -> list[str]:
        """Wait until there is something to deliver; return it as frames."""
        while True:
            frames = self.ready(limit)
            if frames or self.cut_off:
                return frames
            await self.log.wait_beyond(self.cursor)

    def close(self) -> None:
        self.hub.unsubscribe(self)


MAX_MERGED_CHARS = 64 * 1024  # a merged frame stops growing here


def coalesce(entries: list[LoggedEvent], session_id: str) -> list[str]:
    """Merge runs of `stream` deltas of one execution into one `stream` frame each."""
    frames: list[str] = []
    run: list[LoggedEvent] = []
    size = 0

    def flush() -> None:
        nonlocal size
        size = 0
        if len(run) == 1:
            frames.append(run[0].text)
        elif run:
            last = run[-1]
            frames.append(json.dumps({
                "type": "stream", "content": "".join(e.delta or "" for e in run),
                "seq": last.seq, "seq_first": run[0].seq, "session_id": session_id,
                "execution_id": last.execution_id, "ts": last.ts,
            }, ensure_ascii=False, separators=(",", ":")))
        run.clear()

    for entry in entries:
        if entry.delta is not None and (not run or run[-1].execution_id == entry.execution_id) \
                and size < MAX_MERGED_CHARS:
            run.append(entry)
            size += len(entry.delta)
            continue
        flush()
        if entry.delta is not None:
            run.append(entry)
            size = len(entry.delta)
        else:
            frames.append(entry.text)
    flush()
    return frames


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
        queue_size: int = 10_000,
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.keep_finished_s = keep_finished_s
        self.max_lag = queue_size  # each subscriber's bound: events it may be behind
        # Seqs start from the clock, so they keep increasing across supervisor restarts:
        # a client's after_seq from a previous process is then older than anything kept.
        self._seq_base = time.time_ns() // 1000
        self.logs: dict[str, SessionLog] = {}
        self.stats = HubStats()

    def _log(self, session_id: str) -> SessionLog:
        log = self.logs.get(session_id)
        if log is None:
            log = self.logs[session_id] = SessionLog(max(self._seq_base, time.time_ns() // 1000))
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
        ts = _now_iso()
        envelope = {**event, "seq": seq, "session_id": session_id, "execution_id": execution_id, "ts": ts}
        text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
        delta = event["content"] if event.get("type") == "stream" else None
        log.append(LoggedEvent(seq, execution_id, ts, text, delta), self.max_events, self.max_bytes)
        if event.get("type") != "message":
            # A replay after loading the history starts after the user's message: the
            # history already holds it.
            log.first_seq_of.setdefault(execution_id, seq)
        log.last_activity = time.monotonic()
        self.stats.published += 1
        return seq

    def resync_text(self, session_id: str, reason: str) -> str:
        return json.dumps({
            "type": RESYNC, "reason": reason, "session_id": session_id,
            "seq": self._log(session_id).last_seq, "ts": _now_iso(),
        })

    # -- subscribing ------------------------------------------------------------------

    def subscribe(self, session_id: str, after_seq: int | None = None) -> Subscription:
        """Subscribe from after_seq (exactly the events after it, or a resync if some are
        gone); without after_seq, from the running execution's first event."""
        log = self._log(session_id)
        if after_seq is None:
            after_seq = self.replay_point(session_id)
        sub = Subscription(self, log, session_id, after_seq + 1)
        if after_seq > log.last_seq:
            sub._pending_resync = self.resync_text(session_id, "unknown after_seq (from an earlier server run?)")
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
            if not log.running and len(log) and now - log.last_activity > self.keep_finished_s:
                log.clear()
