"""Admission: global and per-user concurrency limits, a FIFO queue with priority."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field


class QueueFull(Exception):
    pass


@dataclass(order=True)
class _Ticket:
    priority: int  # lower runs first
    order: int
    user: str = field(compare=False)
    key: str = field(compare=False)
    granted: asyncio.Future = field(compare=False)


class Admission:
    def __init__(self, max_running: int, max_per_user: int, max_queue: int) -> None:
        self.max_running = max_running
        self.max_per_user = max_per_user
        self.max_queue = max_queue
        self.running: dict[str, str] = {}  # key -> user
        self._waiting: list[_Ticket] = []
        self._order = itertools.count()

    def _per_user(self, user: str) -> int:
        return sum(1 for u in self.running.values() if u == user)

    def _can_run(self, user: str) -> bool:
        return len(self.running) < self.max_running and self._per_user(user) < self.max_per_user

    def queued(self) -> list[str]:
        return [t.key for t in sorted(self._waiting) if not t.granted.done()]

    def position(self, key: str) -> int | None:
        """1-based place in the queue, or None when not queued."""
        for i, k in enumerate(self.queued(), 1):
            if k == key:
                return i
        return None

    def enqueue(self, key: str, user: str, priority: int = 0) -> asyncio.Future:
        """A future that resolves when key may run (at once, if a slot is free)."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        if not self._waiting and self._can_run(user):
            self.running[key] = user
            fut.set_result(None)
            return fut
        if len(self._waiting) >= self.max_queue:
            raise QueueFull(f"the execution queue is full ({self.max_queue} waiting)")
        heapq.heappush(self._waiting, _Ticket(priority, next(self._order), user, key, fut))
        self._dispatch()
        return fut

    def withdraw(self, key: str) -> None:
        """Leave the queue (canceled while waiting) or give back a slot."""
        self._waiting = [t for t in self._waiting if t.key != key]
        heapq.heapify(self._waiting)
        self.running.pop(key, None)
        self._dispatch()

    release = withdraw

    def _dispatch(self) -> None:
        # FIFO by priority, but a user at their own limit does not block others behind them.
        skipped: list[_Ticket] = []
        while self._waiting and len(self.running) < self.max_running:
            ticket = heapq.heappop(self._waiting)
            if ticket.granted.done():
                continue
            if self._per_user(ticket.user) >= self.max_per_user:
                skipped.append(ticket)
                continue
            self.running[ticket.key] = ticket.user
            ticket.granted.set_result(None)
        for ticket in skipped:
            heapq.heappush(self._waiting, ticket)
