"""A small web server on 127.0.0.1 with fixed routes, for web_fetch tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .server import LoopbackServer


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # pause before the body


class FakeWeb(LoopbackServer):
    def __init__(self, routes: dict[str, Page]) -> None:
        super().__init__()
        self.routes = routes
        self.handler_class = _Handler

    def url(self, path: str) -> str:
        return self.origin + path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        web: FakeWeb = self.server.owner  # type: ignore[attr-defined]
        page = web.routes.get(self.path, Page(b"<h1>Not here</h1>", status=404))
        self.send_response(page.status)
        if page.content_type:
            self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        for k, v in page.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if page.delay_s and web.stopping.wait(page.delay_s):
            return
        try:
            self.wfile.write(page.body)
        except OSError:
            pass
