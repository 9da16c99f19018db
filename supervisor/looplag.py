"""Event-loop lag: how late a periodic timer fires (a busy loop delays every socket)."""

from __future__ import annotations

import asyncio
from collections import deque


class LoopLagMonitor:
    def __init__(self, interval: float = 0.05, window: int = 200) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=window)  # seconds late, the last 10 s

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            start = loop.time()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                pass
            self.samples.append(max(0.0, loop.time() - start - self.interval))

    def quantile(self, q: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
