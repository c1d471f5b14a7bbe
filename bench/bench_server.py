"""The dashboard server under load: first pages, sessions, filter updates, and the HTTP routes (loopback only).

Starts ``forestguard serve --warm`` on the demo store (``--procs N``: ``--num-procs N``) with a
peer app beside the dashboard, ``baseline_page.py`` (a plain Panel template page of the same
layout, served at /baseline_page by the same process), then:
- first pages: bursts of 10 visitors arriving at once, as a browser loads a page: GET the page
  (the server makes the session), pull its document over the websocket (the page can show),
  announce it rendered and wait for what follows (the charts below the map). p95 of the first
  two and of the whole, ours beside the plain page's, bursts alternating between the two;
- opens N Bokeh client sessions the same way (10 at a time): creation p95 and the server's
  memory per additional session (RSS, and PSS summed over the worker processes);
- in a browser, changes the country filter 40 times: p95 until the numbers change, and until the map has its new image;
- a bounded load test of /healthz and /api/stats from a thread pool: requests/s, p95, errors;
- in this process, what building one page costs in CPU, split into ours (filters, numbers,
  the map's image and figure, the charts' data) and Panel/Bokeh's (the template and widgets,
  the document's models, its serialisation as the page and the websocket send it).
Peers: the plain Panel page in the same run, the design SLA (p95 < 2 s) and the issue's targets.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from common import ROOT, arguments, demo_store

COUNTRIES = ["Brazil", "Indonesia", "Peru", "Bolivia", "Colombia", "Malaysia", "Paraguay", "Mexico"]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else (values[0] if values else float("nan"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_kb(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serving_pids(pid: int) -> list[int]:
    """The processes holding sessions: the server itself, or its forked workers with --num-procs."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children] or [pid]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the serving processes have used: what a visit costs, whatever else the machine runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(v) for v in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[11:13]) for p in serving_pids(pid)) / ticks


def rss_mb(pid: int) -> float:
    return sum(_proc_kb(f"/proc/{p}/status", "VmRSS") for p in serving_pids(pid)) / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size summed over the serving processes: pages the workers share (the layer loaded before the fork) count once."""
    return sum(_proc_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in serving_pids(pid)) / 1024


def get(url: str, timeout: float = 30) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except Exception:
        status = 0
    return status, time.perf_counter() - started


def start(db: str, port: int, procs: int = 1) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    command = [sys.executable, "-m", "forestguard", "serve", str(ROOT / "baseline_page.py"), "--db", db, "--port", str(port),
               "--address", "127.0.0.1", "--warm", "--num-procs", str(procs)]
    log = (ROOT / ".cache" / "bench_server.log").open("wb")  # the server's log of the last run, for when a figure looks wrong
    process = subprocess.Popen(command, cwd=ROOT.parent, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"forestguard serve exited with {process.returncode}")
        if get(f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200 and len(serving_pids(process.pid)) == max(procs, 1):
            return process
        time.sleep(0.2)
    raise SystemExit("server did not start in 600 s")


class Visitor:
    """A page's connection as a browser holds it, without a browser: GET the page (the server makes the session),
    pull the session's document over the websocket (the page can show: the first page), announce the page
    rendered (Bokeh's document_ready) and read what the server sends until the page is complete: two figures,
    the map and the yearly bars (which the dashboard sends once the page has loaded).

    Bokeh's protocol classes assemble the messages; no document is built (a Python Bokeh client deserialising
    every model would cost this process as much as the server spends making them, on the same cores).
    All visitors share one event loop in a thread of their own (``CLIENT``), which keeps reading every
    connection (pongs, patches) as a browser would.
    """

    FIGURE = '"name":"Figure"'

    def __init__(self) -> None:
        self.first = self.complete = float("nan")
        self._figures = 0
        self._complete = asyncio.Event()
        self._socket: Any = None

    async def open(self, url: str, timeout: float = 300) -> "Visitor":
        from bokeh.client.websocket import WebSocketClientConnectionWrapper
        from bokeh.document import Document
        from bokeh.document.events import MessageSentEvent
        from bokeh.events import DocumentReady
        from bokeh.protocol import Protocol
        from bokeh.protocol.receiver import Receiver
        from tornado.httpclient import AsyncHTTPClient
        from tornado.websocket import websocket_connect

        started = time.perf_counter()
        page = await AsyncHTTPClient().fetch(url, request_timeout=timeout)
        token = re.search(r'"token":\s*"([^"]+)"', page.body.decode()).group(1)
        socket = await websocket_connect(url.rstrip("/").replace("http://", "ws://") + "/ws", subprotocols=["bokeh", token],
                                         max_message_size=1 << 30, connect_timeout=timeout)
        self._socket = WebSocketClientConnectionWrapper(socket)
        protocol, receiver, acked, replied = Protocol(), Receiver(Protocol()), asyncio.Event(), asyncio.Event()

        async def read() -> None:
            while (fragment := await socket.read_message()) is not None:
                if isinstance(fragment, str):
                    self._figures += fragment.count(self.FIGURE)
                message = await receiver.consume(fragment)
                if message is not None and message.msgtype == "ACK":
                    acked.set()
                if message is not None and message.msgtype == "PULL-DOC-REPLY":
                    replied.set()
                if replied.is_set() and self._figures >= 2 and not self._complete.is_set():
                    self.complete = time.perf_counter() - started
                    self._complete.set()

        self._reader = asyncio.ensure_future(read())
        await asyncio.wait_for(acked.wait(), timeout)  # the server has the session ready for this connection
        await protocol.create("PULL-DOC-REQ").send(self._socket)
        await asyncio.wait_for(replied.wait(), timeout)
        self.first = time.perf_counter() - started
        ready = protocol.create("PATCH-DOC", [MessageSentEvent(Document(), "bokeh_event", DocumentReady())])
        await ready.send(self._socket)
        await asyncio.wait_for(self._complete.wait(), timeout)
        return self

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class ClientLoop:
    """The visitors' event loop, in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coroutine: Any, timeout: float = 900) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def visit(self, url: str, n: int = 1, at_once: int = 10) -> list[Visitor]:
        """``n`` visitors of ``url``, ``at_once`` of them arriving together (a batch waits for the one before)."""

        async def batches() -> list[Visitor]:
            visitors: list[Visitor] = []
            for i in range(0, n, at_once):
                visitors += await asyncio.gather(*(Visitor().open(url) for _ in range(min(at_once, n - i))))
            return visitors

        return self.run(batches())

    def close(self, visitors: list[Visitor]) -> None:
        self.loop.call_soon_threadsafe(lambda: [v.close() for v in visitors])


def first_pages(client: ClientLoop, base: str, server_pid: int, bursts: int = 3, visitors: int = 10) -> dict[str, tuple[list[Visitor], float]]:
    """Bursts of ``visitors`` arriving at once at the dashboard and at the plain Panel page, alternating:
    the visits, and the server's CPU seconds per visit."""
    pages = {"dashboard": base + "/", "plain Panel page": base + "/baseline_page"}
    seen: dict[str, list[Visitor]] = {name: [] for name in pages}
    cpu = dict.fromkeys(pages, 0.0)
    for url in pages.values():  # one visit each first: a first session's imports and caches are not a visitor's
        client.close(client.visit(url))
    for _ in range(bursts):
        for name, url in pages.items():
            before = cpu_seconds(server_pid)
            burst = client.visit(url, visitors, at_once=visitors)
            cpu[name] += cpu_seconds(server_pid) - before
            client.close(burst)
            seen[name] += burst
    return {name: (seen[name], cpu[name] / len(seen[name])) for name in pages}


ZONES_TEXT_JS = """
(previous) => {
  const find = (root) => {
    const el = root.querySelector('[data-testid=zones-total] .fg-number');
    if (el) return el;
    for (const host of root.querySelectorAll('*')) {
      if (host.shadowRoot) { const found = find(host.shadowRoot); if (found) return found; }
    }
    return null;
  };
  const el = find(document);
  return el !== null && el.textContent !== previous ? [el.textContent, performance.now()] : false;
}
"""
#: Resolves once the map's image has stayed the same for 12 animation frames (painted, and nothing else on its way),
#: with the image's key: where a change starts from.
SETTLED_JS = """
() => new Promise(done => {
  const key = () => {
    for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) for (const model of doc.all_models) {
      const data = model.data;
      if (data && data.image && data.dw && data.x && data.x.length) return `${data.x[0]}|${data.y[0]}|${data.dw[0]}|${data.dh[0]}`;
    }
    return null;
  };
  let last = key(), frames = 0;
  const tick = () => {
    const now = key();
    if (now !== null && now === last) { if (++frames >= 12) return done(now); } else { last = now; frames = 0; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})
"""
#: The browser's own clock at the press on the option: the update is timed from there, not from
#: Playwright's call (its actionability checks and round trips are not the dashboard's latency).
MARK_CLICK_JS = """
() => { window.__fgClick = null;
  document.addEventListener('pointerdown', () => { window.__fgClick = performance.now(); }, {capture: true, once: true}); }
"""


#: The map image the browser holds (its position and size): changes when a new view's image arrives.
MAP_KEY_JS = """
(previous) => {
  for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) {
    for (const model of doc.all_models) {
      const data = model.data;
      if (data && data.image && data.dw && data.x && data.x.length) {
        const key = `${data.x[0]}|${data.y[0]}|${data.dw[0]}|${data.dh[0]}`;
        return key !== previous ? [key, performance.now()] : false;
      }
    }
  }
  return false;
}
"""


def filter_updates(base: str, changes: int) -> tuple[list[float], list[float]]:
    """In a real browser: pick a country; time from the press on it (the browser's clock) until the zones
    card shows the new number, and until the map's new image has arrived too (the whole view), both seen
    at the next animation frame. Each change starts from a settled view (its image unchanged for 12 frames)."""
    from playwright.sync_api import sync_playwright

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
    numbers, views = [], []

    def changed(script: str, previous: str, what: str) -> tuple[str, float]:
        try:
            value, at = page.wait_for_function(script, arg=previous, polling="raf", timeout=60_000).json_value()
        except Exception as exc:
            raise RuntimeError(f"change {i} ({country}): {what} did not follow within 60 s: {str(exc).splitlines()[0]}") from None
        return value, at

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/")
        i, country = -1, "(page load)"
        previous, _ = changed(ZONES_TEXT_JS, "", "the numbers")
        image = page.evaluate(SETTLED_JS)
        box = page.locator("input.choices__input--cloned").first
        for i in range(changes):
            country = COUNTRIES[i % len(COUNTRIES)]
            if i:  # remove the previous country: back to all zones, numbers and map
                page.locator(".choices__button").first.click()
                previous, _ = changed(ZONES_TEXT_JS, previous, "the numbers after a removal")
                changed(MAP_KEY_JS, image, "the map after a removal")
                image = page.evaluate(SETTLED_JS)
            box.click()
            box.fill(country)
            option = page.locator(".choices__item--choice").get_by_text(country, exact=True).first
            option.wait_for()
            page.evaluate(MARK_CLICK_JS)
            option.click()
            previous, numbers_at = changed(ZONES_TEXT_JS, previous, "the numbers")
            _, view_at = changed(MAP_KEY_JS, image, "the map")
            image = page.evaluate(SETTLED_JS)
            clicked = page.evaluate("() => window.__fgClick")
            numbers.append((numbers_at - clicked) / 1000)
            views.append((max(view_at, numbers_at) - clicked) / 1000)
            page.keyboard.press("Escape")
        browser.close()
    return numbers, views


def session_cost(db: str, pages: int = 10) -> dict[str, float]:
    """CPU seconds (this process, one thread) of each step of building a dashboard page into a Bokeh document, median of ``pages``.

    No session (``doc.session_context`` is None): everything is made at once, the charts too.
    The first page is not counted (imports, the shared layer, compiled kernels, caches).
    """
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from forestguard.dashboard import ZonesDashboard, parts
    from forestguard.server import runtime

    runtime.configure(runtime.ServerOptions(store_url=db))
    steps: dict[str, list[float]] = {}
    for i in range(pages + 1):
        doc = Document()
        marks = [("start", time.process_time())]
        with set_curdoc(doc):
            view = ZonesDashboard()
            marks.append(("ours: filters, statistics, selection", time.process_time()))
            view.map_panel()
            marks.append(("ours: map image and figure", time.process_time()))
            view.cards(), view.yearly_bars(), view.regions_table(), view.downloads(), view.area_controls()
            marks.append(("ours: numbers, charts, regions, downloads, areas", time.process_time()))
            template = parts.template(view)
            marks.append(("Panel: template and widgets", time.process_time()))
            with doc.models.freeze():
                template.server_doc(doc, title="ForestGuard", location=True)
            marks.append(("Panel/Bokeh: the document's models", time.process_time()))
            doc.to_json()
            marks.append(("Bokeh: serialise the document (once)", time.process_time()))
        if i:
            for (_, before), (name, at) in zip(marks, marks[1:]):
                steps.setdefault(name, []).append(at - before)
    return {name: statistics.median(values) for name, values in steps.items()}


def main() -> None:
    parser_args = arguments(__doc__, extra=lambda parser: parser.add_argument("--procs", type=int, default=1, help="forestguard serve --num-procs"))
    sessions_wanted = int(os.environ.get("FG_BENCH_SESSIONS", "100"))
    db = demo_store(parser_args.zones, parser_args.seed)
    cost = session_cost(db)
    total = sum(cost.values())
    print(f"\none dashboard page built in this process ({parser_args.zones:,} zones), CPU median of 10: {total * 1000:,.0f} ms")
    for name, seconds in cost.items():
        print(f"  {name:<52} {seconds * 1000:7,.1f} ms  {100 * seconds / total:4.0f} %")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = start(db, port, parser_args.procs)
    workers = len(serving_pids(server.pid))
    print(f"\n{parser_args.zones:,} demo zones; server up (warm, {workers} process{'es' if workers > 1 else ''}) in {time.perf_counter() - started:.1f} s, "
          f"RSS {rss_mb(server.pid):,.0f} MB, PSS {pss_mb(server.pid):,.0f} MB")
    client = ClientLoop()
    try:
        (first,) = client.visit(base + "/")
        baseline, baseline_pss = rss_mb(server.pid), pss_mb(server.pid)
        cpu_before = cpu_seconds(server.pid)
        sessions = [first] + client.visit(base + "/", sessions_wanted - 1, at_once=10)
        cpu_per_session = (cpu_seconds(server.pid) - cpu_before) / max(sessions_wanted - 1, 1)
        creation = [v.complete for v in sessions]
        after, after_pss = rss_mb(server.pid), pss_mb(server.pid)
        per_session = (after - baseline) / max(len(sessions) - 1, 1)
        per_session_pss = (after_pss - baseline_pss) / max(len(sessions) - 1, 1)
        print(f"sessions: {len(sessions)} open (complete pages), 10 arriving at a time: creation p95 {p95(creation) * 1000:,.0f} ms "
              f"(median {statistics.median(creation) * 1000:,.0f} ms); RSS {baseline:,.0f} → {after:,.0f} MB = {per_session:.1f} MB per session "
              f"(PSS {baseline_pss:,.0f} → {after_pss:,.0f} MB = {per_session_pss:.1f}) → {(2048 * workers - baseline_pss) / max(per_session_pss, 0.01):,.0f} "
              f"sessions in {workers} × 2 GB; server CPU {cpu_per_session * 1000:,.0f} ms per session created")

        cpu_before = cpu_seconds(server.pid)
        try:
            numbers, views = filter_updates(base, 40)  # 40 changes: a p95 that is not just the slowest one
        except Exception as exc:  # e.g. a map that never followed its numbers: report it, measure the rest
            print(f"filter-to-update: FAILED ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            numbers, views = [], []
        else:
            print(f"server CPU per filter change (the browser's session, its page load included): "
                  f"{(cpu_seconds(server.pid) - cpu_before) / 40 * 1000:,.0f} ms")
        for what, times in (("numbers", numbers), ("whole view (numbers, map)", views)) if numbers else ():
            print(f"filter-to-update, {what} (browser, {len(sessions)} other sessions open): p95 {p95(times) * 1000:,.0f} ms, "
                  f"median {statistics.median(times) * 1000:,.0f} ms, max {max(times) * 1000:,.0f} ms (target ≤ 200 ms, SLA < 2 s)")
        client.close(sessions)

        pages = first_pages(client, base, server.pid)  # after the sessions' memory: their pages reuse what closed sessions freed
        plain = [(v.first, v.complete) for v in pages["plain Panel page"][0]]
        for name, (visits, cpu) in pages.items():
            first_s, complete = [v.first for v in visits], [v.complete for v in visits]
            print(f"page, 10 visitors arriving at once ({len(visits)} visits): {name:<17} first p95 {p95(first_s) * 1000:,.0f} ms "
                  f"(median {statistics.median(first_s) * 1000:,.0f}), complete p95 {p95(complete) * 1000:,.0f} ms (median {statistics.median(complete) * 1000:,.0f}); "
                  f"server CPU {cpu * 1000:,.0f} ms a visit"
                  + ("" if name != "dashboard" else f"; plain/ours ×{p95([f for f, _ in plain]) / p95(first_s):.2f} first, ×{p95([c for _, c in plain]) / p95(complete):.2f} complete"))

        for path, n in (("/healthz", 2000), ("/api/stats", 600)):
            rng = random.Random(1)

            def url(_: int) -> str:
                if path == "/healthz":
                    return base + path
                return base + f"/api/stats?country={rng.choice(COUNTRIES)}&by={rng.choice(['year', 'classification', 'year,classification'])}"

            urls = [url(i) for i in range(n)]
            t0, cpu0 = time.perf_counter(), cpu_seconds(server.pid)
            with ThreadPoolExecutor(max_workers=16) as pool:
                results = list(pool.map(get, urls))
            wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
            errors = sum(1 for status, _ in results if status != 200)
            print(f"load {path:<11} {n:,} requests, 16 threads: {n / wall:,.0f} req/s, p95 {p95([t for _, t in results]) * 1000:,.1f} ms, "
                  f"errors {errors}; server CPU {cpu:.2f} s → {n / max(cpu, 1e-3):,.0f} requests per CPU-second")
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        sessions_line = next((line for line in metrics.splitlines() if line.startswith("forestguard_sessions_created_total")), "")
        print(f"server metrics: {sessions_line}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
