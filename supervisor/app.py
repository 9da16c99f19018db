"""The web process: the Starlette app, its lifespan (store, auth, hub, engine), and serve()."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import logs
from .api import auth_routes, chat_http, chat_ws, executions, ops, sessions, users
from .api.errors import error_response, exception_handlers
from .auth import Authenticator, bootstrap_admin
from .chat import ChatService
from .config import Settings, load_settings
from .engine import Engine
from .hub import Hub
from .looplag import LoopLagMonitor
from .metrics import Metrics
from .recorder import Recorder
from .store import Store

log = logging.getLogger("kakoclaw")

STATIC_DIR = Path(__file__).resolve().parent / "static"
WS_MAX_BYTES = 4 * 1024 * 1024  # frames above this close the socket (1009); above 512 KiB get an error

NOT_BUILT = """<!doctype html><title>KakoClaw</title>
<h1>KakoClaw is running</h1><p>The web interface is not built. Build it with
<code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code> (scripts/run.sh does this), or use the API at
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>"""


async def spa(request: Request) -> Response:
    """Static files of the built frontend; unknown non-API paths get index.html (history routing)."""
    path = request.path_params.get("path", "")
    if path.startswith(("api/", "ws/")):
        return error_response(404, "not found")
    index = STATIC_DIR / "index.html"
    if path:
        candidate = (STATIC_DIR / path).resolve()
        if candidate.is_file() and STATIC_DIR in candidate.parents:
            return FileResponse(candidate)
    if index.is_file():
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
    return HTMLResponse(NOT_BUILT)


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        store = Store.open(settings.data_dir)
        bootstrap_admin(store, settings)
        interrupted = store.interrupt_unfinished("supervisor stopped while it ran")
        if interrupted:
            log.warning("marked %d execution(s) of a previous run interrupted", len(interrupted))
        hub = Hub(
            max_events=settings.event_log_max_events,
            max_bytes=settings.event_log_max_bytes,
            keep_finished_s=settings.event_log_keep_finished,
            queue_size=settings.subscriber_queue,
        )
        metrics = Metrics()
        engine = Engine(settings, hub, Recorder(store, metrics))
        lag = LoopLagMonitor()
        async with engine, asyncio.TaskGroup() as tasks:
            stop_lag = asyncio.Event()
            tasks.create_task(lag.run(stop_lag))
            metrics.bind(engine, hub, lag)
            app.state.settings = settings
            app.state.store = store
            app.state.auth = Authenticator.from_settings(store, settings)
            app.state.hub = hub
            app.state.engine = engine
            app.state.metrics = metrics
            app.state.chat = ChatService(settings, store, engine)
            log.info("KakoClaw listening on http://%s:%d (containment: %s)",
                     settings.web_host, settings.web_port, engine.containment.name)
            try:
                yield
            finally:
                stop_lag.set()
                log.info("shutting down: canceling %d execution(s)", len(engine.live))
        store.close()

    routes = [
        *ops.routes,
        *auth_routes.routes,
        *users.routes,
        *sessions.routes,
        *chat_http.routes,
        *executions.routes,
        *chat_ws.routes,
    ]
    if (STATIC_DIR / "assets").is_dir():
        routes.append(Mount("/assets", StaticFiles(directory=STATIC_DIR / "assets"), name="assets"))
    routes += [Route("/", spa), Route("/{path:path}", spa)]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers)


def serve(settings: Settings | None = None) -> int:
    import uvicorn

    settings = settings or load_settings()
    logs.configure(settings.log_level, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        ws_max_size=WS_MAX_BYTES,
        ws_ping_interval=20,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=max(5, int(settings.cancel_grace) + 2),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal after its graceful shutdown; a requested stop
    # that canceled every execution cleanly is a success, so that re-raise hits a no-op.
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 1
