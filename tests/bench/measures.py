"""The benchmarks: each starts what it needs, measures through the public API, and
returns figures side by side with a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
import websockets

from tests.engine_helpers import survivors
from tests.server_helpers import Server, cleanup, free_port, new_data_dir

HERE = Path(__file__).resolve().parent


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    note: str = ""

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


@dataclass
class Run:
    quick: bool
    figures: list[Figure] = field(default_factory=list)

    def add(self, fig: Figure) -> None:
        self.figures.append(fig)
        base = ""
        if fig.baseline is not None:
            ratio = f", ratio {fig.ratio:.2f}" if fig.ratio is not None else ""
            base = f"  (baseline {fig.baseline_name}: {fig.baseline:.2f}{ratio})"
        goal = f"  goal {fig.goal}: {'met' if fig.met else 'NOT met'}" if fig.goal else ""
        print(f"{fig.name:42s} {fig.value:12.2f} {fig.unit:8s}{base}{goal}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def start_server(**env) -> Server:
    server = Server(new_data_dir(), free_port(), {f"KAKOCLAW_{k.upper()}": str(v) for k, v in env.items()})
    return server.start(timeout=60)


def ws(server: Server, token: str):
    return websockets.connect(f"{server.ws_url}?token={token}", max_size=16 * 1024 * 1024, ping_interval=None)


async def until(sock, predicate, timeout=120):
    async with asyncio.timeout(timeout):
        while True:
            ev = json.loads(await sock.recv())
            if predicate(ev):
                return ev


def sid() -> str:
    return f"web:chat:bench-{uuid.uuid4().hex[:10]}"


# -- 1. first event latency --------------------------------------------------------------


def bench_first_event(run: Run) -> None:
    trials = 10 if run.quick else 50
    bare = []
    for _ in range(trials):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - t0) * 1000)
    for pool in (0, 2):
        server = start_server(runner_pool_size=pool)
        try:
            token = server.login()
            lat = asyncio.run(_first_event(server, token, trials, pool))
            idle = _metric(server, token, "kakoclaw_runner_pool_idle_rss_bytes")
        finally:
            cleanup(server)
        p50, b50 = statistics.median(lat), statistics.median(bare)
        name = f"first event p50, pool={pool}"
        run.add(Figure(name, p50, "ms", goal="p50 < bare interpreter start" if pool else "", met=(p50 < b50) if pool else None,
                       baseline=b50, baseline_name="python -c pass p50", ratio=p50 / b50,
                       note=f"p99 {pct(lat, 0.99):.1f} ms"))
        if pool:
            run.add(Figure("warm pool idle memory (2 runners)", idle / 2**20, "MiB"))


async def _first_event(server: Server, token: str, trials: int, pool: int) -> list[float]:
    out = []
    async with ws(server, token) as sock:
        for _ in range(trials):
            if pool:
                await asyncio.sleep(0.3)  # the pool refills between messages, as between a person's turns
            session = sid()
            t0 = time.perf_counter()
            await sock.send(json.dumps({"type": "message", "session_id": session, "content": "hello"}))
            await until(sock, lambda e: e["type"] == "stream")
            out.append((time.perf_counter() - t0) * 1000)
            await until(sock, lambda e: e["type"] == "ready")
    return out


def _metric(server: Server, token: str, name: str) -> float:
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


# -- 2. cancel latency -------------------------------------------------------------------


def bench_cancel(run: Run) -> None:
    trials = 10 if run.quick else 100
    grace = 0.25
    server = start_server(runner_pool_size=2)
    try:
        token = server.login()
        coop, coop_srv, coop_left = asyncio.run(_cancels(server, token, trials, "/sleep 60", grace))
        token_sleep = f"{5000 + uuid.uuid4().int % 10**6 / 1000:.3f}"
        stub, stub_srv, stub_left = asyncio.run(
            _cancels(server, token, trials, f"/shell trap '' TERM; sleep {token_sleep}", grace, token_sleep))
    finally:
        cleanup(server)
    run.add(Figure("cancel, cooperative p99 (HTTP round trip)", pct(coop, 0.99), "ms", goal="<= 50 ms",
                   met=pct(coop, 0.99) <= 50, note=f"p50 {pct(coop, 0.5):.1f} ms; server-side p99 {pct(coop_srv, 0.99):.1f} ms"))
    run.add(Figure("cancel, SIGTERM-ignoring p99 (HTTP)", pct(stub, 0.99), "ms", goal=f"<= grace + 50 ms ({grace * 1000:.0f} + 50)",
                   met=pct(stub, 0.99) <= grace * 1000 + 50, baseline=grace * 1000, baseline_name="grace",
                   ratio=pct(stub, 0.99) / (grace * 1000), note=f"server-side p99 {pct(stub_srv, 0.99):.1f} ms"))
    run.add(Figure("processes left after all cancels", coop_left + stub_left, "procs", goal="0", met=coop_left + stub_left == 0))


async def _cancels(server, token, trials, content, grace, token_sleep=None):
    client_ms, server_ms, left = [], [], 0
    async with ws(server, token) as sock, httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for _ in range(trials):
            session = sid()
            await sock.send(json.dumps({"type": "message", "session_id": session, "content": content}))
            await until(sock, lambda e: e["type"] in ("stream", "tool_output") or
                        (e["type"] == "tool_call" and e["status"] == "started"))
            # Let the warm pool finish replacing the runner this message took: on 2 cores a
            # starting interpreter would otherwise compete with the cancel being measured.
            await asyncio.sleep(0.3)
            if token_sleep:
                for _ in range(200):  # the tool is running before we cancel it
                    if survivors(f"sleep {token_sleep}"):
                        break
                    await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            r = await http.post("/api/v1/chat/cancel", json={"session_id": session, "grace_s": grace})
            client_ms.append((time.perf_counter() - t0) * 1000)
            server_ms.append(r.json()["executions"][0]["latency_ms"])
            if token_sleep:
                left += len(survivors(f"sleep {token_sleep}"))
            await until(sock, lambda e: e["type"] == "ready")
    return client_ms, server_ms, left


# -- 3. stream throughput ----------------------------------------------------------------


def bench_throughput(run: Run) -> None:
    n = 20_000 if run.quick else 100_000
    server = start_server(runner_pool_size=2)
    try:
        token = server.login()
        ours, sample = asyncio.run(_flood(server, token, n))
    finally:
        cleanup(server)
    bare = asyncio.run(_bare_websockets(n, sample))
    run.add(Figure("stream throughput (/flood, one client)", ours, "events/s", goal="ratio >= 0.5", met=ours / bare >= 0.5,
                   baseline=bare, baseline_name="bare websockets server, same messages", ratio=ours / bare))


async def _flood(server, token, n):
    async with ws(server, token) as sock:
        session = sid()
        await sock.send(json.dumps({"type": "message", "session_id": session, "content": f"/flood {n}"}))
        await until(sock, lambda e: e["type"] == "stream_start")
        t0 = time.perf_counter()
        deltas = 0
        sample = ""
        while True:
            ev = json.loads(await sock.recv())
            if ev["type"] == "stream":
                deltas += ev["seq"] - ev.get("seq_first", ev["seq"]) + 1
                if not sample and "seq_first" not in ev:
                    sample = json.dumps(ev)
            if ev["type"] == "stream_end":
                break
            if ev["type"] == "resync":
                raise RuntimeError(f"the client was cut off after {deltas} of {n} deltas: {ev['reason']}")
        elapsed = time.perf_counter() - t0
    assert deltas == n, (deltas, n)
    sample = sample or json.dumps({"type": "stream", "content": "x12345 ", "seq": 1795617280385000,
                                   "session_id": session, "execution_id": session + ":1795617280378521831",
                                   "ts": "2026-11-25T14:34:40.801Z"})
    return n / elapsed, sample


async def _bare_websockets(n, message):
    """The same number of equally sized event messages from a bare websockets server."""
    async def handler(conn):
        await conn.recv()
        for _ in range(n):
            await conn.send(message)
        await conn.send("end")

    port = free_port()
    async with websockets.serve(handler, "127.0.0.1", port, max_size=2**24):
        async with websockets.connect(f"ws://127.0.0.1:{port}", max_size=2**24, ping_interval=None) as sock:
            t0 = time.perf_counter()
            await sock.send("go")
            count = 0
            while (msg := await sock.recv()) != "end":
                json.loads(msg)
                count += 1
            return count / (time.perf_counter() - t0)


# -- 4. fan-out --------------------------------------------------------------------------


def bench_fanout(run: Run) -> None:
    subs = 20 if run.quick else 100
    rate, seconds = 1000, (3 if run.quick else 8)
    server = start_server(runner_pool_size=2, runner_args=str(HERE / "paced_runner.py"),
                          subscriber_queue=100_000, event_log_max_events=200_000)
    try:
        token = server.login()
        lat, thr = asyncio.run(_fanout(server, token, subs, rate, seconds, stalled=False))
        lat2, thr2 = asyncio.run(_fanout(server, token, subs, rate, seconds, stalled=True))
    finally:
        cleanup(server)
    run.add(Figure(f"fan-out p99 delivery latency, {subs} subscribers", pct(lat, 0.99) * 1000, "ms", goal="<= 50 ms",
                   met=pct(lat, 0.99) * 1000 <= 50, note=f"p50 {pct(lat, 0.5) * 1000:.1f} ms at {rate} events/s"))
    drop = max(0.0, 1 - thr2 / thr) * 100
    run.add(Figure("fan-out throughput drop with a stalled subscriber", drop, "%", goal="<= 5 %", met=drop <= 5,
                   baseline=thr, baseline_name="events/s per subscriber without it", ratio=thr2 / thr))


async def _fanout(server, token, subs, rate, seconds, stalled):
    session = sid()
    count = rate * seconds
    socks = [await ws(server, token).__aenter__() for _ in range(subs + (1 if stalled else 0))]
    try:
        for sock in socks:
            await sock.send(json.dumps({"type": "subscribe", "session_id": session}))
            await until(sock, lambda e: e["type"] == "subscribed")
        readers = socks[:subs]  # the stalled one (last) never reads again

        async def read(sock):
            lat, n, first, last = [], 0, None, None
            while True:
                ev = json.loads(await sock.recv())
                now = time.time()
                if ev["type"] == "stream":
                    for stamp in ev["content"].split():
                        lat.append(now - float(stamp))
                        n += 1
                    first = first or now
                    last = now
                if ev["type"] == "resync":
                    raise RuntimeError(f"a subscriber was cut off: {ev['reason']}")
                if ev["type"] == "stream_end":
                    return lat, n / max(1e-9, (last - first)) if first and last and last > first else 0.0

        tasks = [asyncio.create_task(read(s)) for s in readers]
        await readers[0].send(json.dumps({"type": "message", "session_id": session, "content": f"{rate} {count}"}))
        results = await asyncio.gather(*tasks)
    finally:
        for sock in socks:
            await sock.close()
    lat = [x for r in results for x in r[0]]
    thr = statistics.mean(r[1] for r in results)
    return lat, thr


# -- 5. scale ----------------------------------------------------------------------------


def bench_scale(run: Run) -> None:
    n = 50 if run.quick else 200
    server = start_server(runner_pool_size=0, max_concurrent=n + 10, max_concurrent_per_user=n + 10,
                          max_queue=n + 10)
    try:
        token = server.login()
        proc = psutil.Process(server.proc.pid)
        time.sleep(1)
        base_rss = proc.memory_info().rss
        active_p50, rss_running, ramp_max, lag99 = asyncio.run(_scale(server, token, n, proc))
    finally:
        cleanup(server)
    per_exec = max(0, rss_running - base_rss) / n
    run.add(Figure(f"/api/v1/chat/active p50 with {n} running", active_p50, "ms", goal="<= 25 ms", met=active_p50 <= 25))
    run.add(Figure("supervisor memory per execution", per_exec / 1024, "KiB", goal="<= 200 KiB", met=per_exec <= 200 * 1024,
                   baseline=base_rss / 2**20, baseline_name="idle supervisor RSS MiB"))
    run.add(Figure(f"event-loop lag p99 with {n} running", lag99 * 1000, "ms", goal="<= 50 ms", met=lag99 * 1000 <= 50,
                   note=f"max while the {n} runners started: {ramp_max * 1000:.0f} ms"))


def _metric_q(server, token, name, q):
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{quantile="{q}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


async def _scale(server, token, n, proc):
    async with ws(server, token) as sock, httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        for i in range(n):
            await sock.send(json.dumps({"type": "message", "session_id": f"web:chat:scale-{i}", "content": "/sleep 120"}))
        for _ in range(600):
            rows = (await http.get("/api/v1/chat/active")).json()
            if sum(r["state"] == "running" for r in rows) == n:
                break
            await asyncio.sleep(0.5)
        ramp_max = _metric_q(server, token, "kakoclaw_event_loop_lag_seconds", "1.0")
        await asyncio.sleep(11)  # steady state: every runner streaming its ticks; lag window is 10 s
        lag99 = _metric_q(server, token, "kakoclaw_event_loop_lag_seconds", "0.99")
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            rows = (await http.get("/api/v1/chat/active")).json()
            lat.append((time.perf_counter() - t0) * 1000)
            assert len(rows) == n
            await asyncio.sleep(0.1)
        rss = proc.memory_info().rss
        await http.post("/api/v1/chat/cancel", json={"all": True})
    return statistics.median(lat), rss, ramp_max, lag99


BENCHES = {
    "first_event": bench_first_event,
    "cancel": bench_cancel,
    "throughput": bench_throughput,
    "fanout": bench_fanout,
    "scale": bench_scale,
}
