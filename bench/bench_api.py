"""HTTP API under load: /api/stats answers from `forestguard serve` against a plain Tornado peer, with ApacheBench.

The load generator is ApacheBench (`ab`, Debian's apache2-utils), not our code. Both servers run as
their own processes on loopback, on the same demo store, in the same run:

- ours: `forestguard serve` — cached answers sent as stored bytes (gzip when accepted, 304 on
  If-None-Match);
- peer: a plain Tornado app (`tornado.web`, no Panel/Bokeh around it) answering /api/stats the way
  the server did before: statistics through the same cache, then JSON-encoded on every request;
  and /static, the same JSON as one constant bytes object — what Tornado alone can do here.

Each load is bounded (`ab -n N -c C`, a per-request timeout); the printed lines give requests/s,
p95 (ms), failures, and each server's peak RSS. The machine is shared: compare within one run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request

from common import ROOT, arguments, demo_store

#: The peer: the pre-change /api/stats path, on plain Tornado.
PEER = textwrap.dedent(
    """
    import sys
    from tornado.ioloop import IOLoop
    from tornado.web import Application, RequestHandler
    from forestguard import stores
    from forestguard.cache import default_cache
    from forestguard.schema import GROUP_KEYS
    from forestguard.stats import statistics
    from forestguard.stores.base import ZoneFilter

    store = stores.open(sys.argv[1], read_only=True)
    WHOLE = statistics(store, ZoneFilter(), GROUP_KEYS).to_json().encode()

    class Stats(RequestHandler):
        async def get(self):
            country = self.get_query_argument("country", None)
            by = tuple(k for k in self.get_query_argument("by", ",".join(GROUP_KEYS)).split(",") if k)
            where = ZoneFilter(countries=(country,)) if country else ZoneFilter()
            body = await IOLoop.current().run_in_executor(None, lambda: statistics(store, where, by, cache=default_cache()).to_json())
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(body)

    class Static(RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(WHOLE)

    Application([(r"/api/stats", Stats), (r"/static", Static), (r"/healthz", Static)]).listen(int(sys.argv[2]), "127.0.0.1")
    IOLoop.current().start()
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} not up after {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers.get("ETag", "")


def ab(url: str, n: int, c: int, headers: tuple[str, ...] = ()) -> dict[str, float]:
    """One bounded ApacheBench run: requests/s, p95 ms, failed and non-2xx/3xx counts."""
    command = ["ab", "-q", "-n", str(n), "-c", str(c), "-s", "30", *(a for h in headers for a in ("-H", h)), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout

    def number(pattern: str, default: float = 0.0) -> float:
        found = re.search(pattern, out, re.M)
        return float(found.group(1)) if found else default

    return {
        "rps": number(r"^Requests per second:\s+([\d.]+)"),
        "p95": number(r"^\s+95%\s+(\d+)"),
        "failed": number(r"^Failed requests:\s+(\d+)"),
        "non2xx": number(r"^Non-2xx responses:\s+(\d+)"),
        "bytes": number(r"^Document Length:\s+(\d+)"),
    }


def line(label: str, result: dict[str, float], *, revalidation: bool = False) -> str:
    """One result; a revalidation run counts its answers that were not 304 as errors (ab counts every 304 as non-2xx)."""
    errors = int(result["failed"] + (0 if revalidation else result["non2xx"]))
    shown = f"{int(result['non2xx']):,} × 304" if revalidation else f"{result['bytes']:,.0f} B"
    return f"{label:<50} {result['rps']:>8,.0f} req/s   p95 {result['p95']:>5,.0f} ms   {shown:>11}   errors {errors}"


def main() -> None:
    args = arguments(__doc__, zones=100_000, extra=lambda p: (p.add_argument("--requests", type=int, default=2000),
                                                               p.add_argument("--concurrency", type=int, default=10)))
    if shutil.which("ab") is None:
        raise SystemExit("ApacheBench (ab) is not installed: apt-get install apache2-utils (make system-deps)")
    db = demo_store(args.zones, args.seed)
    ours_port, peer_port = free_port(), free_port()
    ours = subprocess.Popen([sys.executable, "-m", "forestguard", "serve", "--db", db, "--port", str(ours_port), "--address", "127.0.0.1"],
                            cwd=ROOT.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    peer = subprocess.Popen([sys.executable, "-c", PEER, db, str(peer_port)], cwd=ROOT.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ours_base, peer_base = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
        wait_up(ours_base + "/healthz", ours)
        wait_up(peer_base + "/healthz", peer)
        n, c = args.requests, args.concurrency
        print(f"\n{args.zones:,} demo zones; ab -n {n} -c {c} on loopback (shared machine: compare within this run)")
        gzip = ("Accept-Encoding: gzip",)
        for path in ("/api/stats", "/api/stats?country=Brazil&by=year"):
            for base in (ours_base, peer_base):  # warm both: the first answer computes, later ones are cached
                urllib.request.urlopen(base + path, timeout=120).read()
            print(f"\n{path}")
            theirs = ab(peer_base + path, n, c)
            print(line("  peer: plain Tornado, JSON encoded per request", theirs))
            mine = ab(ours_base + path, n, c)
            print(line("  ours: cached encoded body", mine))
            print(line("  ours: gzip (Accept-Encoding: gzip)", ab(ours_base + path, n, c, gzip)))
            revalidated = ab(ours_base + path, n, c, (f"If-None-Match: {etag_of(ours_base + path)}",))
            print(line("  ours: revalidation (If-None-Match → 304)", revalidated, revalidation=True))
            if theirs["rps"]:
                print(f"  ratio ours/peer (identity body): ×{mine['rps'] / theirs['rps']:,.1f} req/s")
        print()
        print(line("/static: plain Tornado, one constant body (ceiling)", ab(peer_base + "/static", n, c)))
        print(line("/healthz: ours", ab(ours_base + "/healthz", n, c)))
        print(f"\npeak RSS: ours {peak_rss_mb(ours.pid):,.0f} MB, peer {peak_rss_mb(peer.pid):,.0f} MB")
    finally:
        for process in (ours, peer):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
