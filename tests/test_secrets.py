"""Secrets never reach logs, errors or probe answers (passwords in DATABASE_URL / REDIS_URL)."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.services import free_port
from tests.server.conftest import ROOT, server_env, start_server, stop_server

SECRET = "s3cr3t-Pa55word"


def test_cli_errors_hide_the_database_password(tmp_path):
    url = f"postgresql://forest:{SECRET}@127.0.0.1:{free_port()}/zones?connect_timeout=2"
    done = subprocess.run([sys.executable, "-m", "forestguard", "stats", "--db", url], cwd=ROOT,
                          env=server_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert SECRET not in done.stderr + done.stdout
    assert "forest:***@" in done.stderr and "Traceback" not in done.stderr


def test_server_logs_and_readiness_hide_passwords(tmp_path):
    env = server_env(
        tmp_path,
        DATABASE_URL=f"postgresql://forest:{SECRET}@127.0.0.1:{free_port()}/zones?connect_timeout=1",
        REDIS_URL=f"redis://:{SECRET}@127.0.0.1:{free_port()}/0",
    )
    served = start_server(tmp_path, None, env=env)
    try:
        assert served.get("/healthz")[0] == 200
        status, _, body = served.get("/readyz")
        metrics = served.get("/metrics")[2]
        stats_status, _, stats_body = served.get("/api/stats")
    finally:
        stop_server(served)
    assert status == 503
    assert stats_status >= 500  # the store is down: an error answer, but no secret in it
    for text in (body.decode(), metrics.decode(), stats_body.decode(), served.logs()):
        assert SECRET not in text
    assert "store" in body.decode() and "redis" in body.decode()
