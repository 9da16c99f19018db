"""Writes protocol events to stdout, one JSON line each, and counts what was written."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

from .protocol import encode_event


class EventWriter:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream or sys.stdout.buffer
        self.bytes_written = 0

    def emit(self, etype: str, **fields: Any) -> None:
        line = encode_event(etype, **fields)
        self._stream.write(line)
        self._stream.flush()
        self.bytes_written += len(line)

    def delta(self, text: str) -> None:
        if text:
            self.emit("delta", text=text)
