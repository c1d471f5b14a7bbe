"""A real ``forestguard serve`` subprocess on a free port, for route and browser tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.fixtures.services import free_port, make_store, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A running server and how to talk to it."""

    process: subprocess.Popen
    port: int
    db: str | None
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def json(self, path: str) -> tuple[int, Any]:
        status, _, body = self.get(path)
        return status, json.loads(body)

    def cli(self, *args: str) -> str:
        """Run the forestguard CLI against the same store, as a user would (independent of the server)."""
        done = subprocess.run([sys.executable, "-m", "forestguard", *args, "--db", self.db], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SENTRY_DSN", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PYTHONPATH=str(ROOT), FORESTGUARD_DATA_DIR=str(tmp / "data"), **extra)
    return env


def start_server(tmp: Path, db: str | None, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Served:
    port = free_port()
    log = tmp / f"serve-{port}.log"
    env = env or server_env(tmp)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "forestguard", "serve", *(["--db", db] if db else []), "--port", str(port), "--address", "127.0.0.1", *args],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(process, port, db, log, env)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"forestguard serve exited with {process.returncode}:\n{served.logs()[-3000:]}")
        return served.get("/healthz", timeout=2)[0] == 200

    try:
        wait_until(healthy, timeout=timeout, what="forestguard serve")
    except BaseException:
        stop_server(served)
        raise
    if process.poll() is not None:
        raise RuntimeError(f"forestguard serve exited:\n{served.logs()[-3000:]}")
    return served


def stop_server(served: Served) -> None:
    if served.process.poll() is None:
        os.killpg(served.process.pid, signal.SIGTERM)  # its own session: workers of --num-procs go too
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=5)


@pytest.fixture(scope="module")
def served_store(tmp_path_factory, demo_small) -> str:
    return make_store(tmp_path_factory.mktemp("served") / "zones.duckdb", demo_small)


@pytest.fixture(scope="module")
def server(tmp_path_factory, served_store) -> Iterator[Served]:
    served = start_server(tmp_path_factory.mktemp("server"), served_store)
    yield served
    stop_server(served)
