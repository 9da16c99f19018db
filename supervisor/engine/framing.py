"""Turns an untrusted runner's stdout bytes into validated protocol events.

Lines are split here rather than with StreamReader.readline: after a limit overrun
readline hands back a tail fragment as if it were a line. An over-long line is dropped
whole and reported once; no fragment of it is ever forwarded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

from agent_runner.protocol import ProtocolError, validate_event


@dataclass
class LineFramer:
    line_limit: int = 1024 * 1024
    _buf: bytearray = field(default_factory=bytearray)
    _skipping: bool = False  # inside an over-long line, dropping bytes until its newline

    def feed(self, chunk: bytes) -> Iterator[dict]:
        """Yield one event per complete line in chunk (an error event for each bad line)."""
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            end = nl if nl >= 0 else len(chunk)
            if not self._skipping:
                if len(self._buf) + (end - start) > self.line_limit:
                    self._buf.clear()
                    self._skipping = True
                    yield error_event(f"runner output line longer than {self.line_limit} bytes was dropped")
                elif nl >= 0 and not self._buf:
                    if event := decode_line(chunk[start:end]):  # the common case: no copy
                        yield event
                    start = nl + 1
                    continue
                else:
                    self._buf += chunk[start:end]
            if nl < 0:
                return
            if self._skipping:
                self._skipping = False
            else:
                line = bytes(self._buf)
                self._buf.clear()
                if event := decode_line(line):
                    yield event
            start = nl + 1

    def finish(self) -> Iterator[dict]:
        """At EOF: a last line without its newline is still a line."""
        if self._buf and not self._skipping:
            line = bytes(self._buf)
            self._buf.clear()
            if event := decode_line(line):
                yield event


def error_event(reason: str) -> dict:
    return {"type": "error", "message": reason, "protocol": True}


def decode_line(line: bytes) -> dict | None:
    line = line.strip()
    if not line:
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error_event(f"runner output line is not UTF-8 (byte {exc.start}); dropped")
    try:
        obj = json.loads(text)
    except ValueError:
        return error_event(f"runner output line is not JSON; dropped: {text[:200]!r}")
    try:
        return validate_event(obj)
    except ProtocolError as exc:
        return error_event(f"runner output line breaks the protocol ({exc}); dropped")
