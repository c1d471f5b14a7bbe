"""`make lab`: a real JupyterLab on loopback lists the notebooks and runs one in headless Chromium.

The lab serves a copy of notebooks/ (JupyterLab autosaves: the repository's files stay clean) with
the demo store as DATABASE_URL, as `make lab` sets it. The page must show the notebook's Panel and
HoloViews (Bokeh) output, drawn by the lab extensions the `notebooks` extra installs, and a widget
change must round-trip through the kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.services import free_port, make_store, wait_until

ROOT = Path(__file__).resolve().parents[2]
#: The lab extensions that draw Panel/HoloViews, Bokeh and ipywidgets output.
EXTENSIONS = ("@pyviz/jupyterlab_pyviz", "@bokeh/jupyter_bokeh", "@jupyter-widgets/jupyterlab-manager")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Lab:
    def __init__(self, process: subprocess.Popen, port: int, token: str, log: Path) -> None:
        self.process, self.port, self.token, self.log = process, port, token, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}{'&' if '?' in path else '?'}token={self.token}"

    def json(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return json.loads(body) if body else None


def listening_addresses(port: int) -> set[str]:
    """Local addresses (kernel hex) of sockets listening on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory, demo_small) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("lab")
    store = make_store(work / "demo.duckdb", demo_small)
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    port, token = free_port(), uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SENTRY_DSN", "JUPYTER_TOKEN")}
    # The user's Jupyter settings, workspaces and runtime files stay out of it.
    env.update(JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"), PYTHONPATH=str(ROOT))
    log = work / "lab.log"
    venv = Path(sys.prefix)
    command = ["make", "-s", "-o", str(venv / ".installed"), "lab", f"VENV={venv}", f"DB={store}", f"LAB_DIR={work / 'notebooks'}",
               f"LAB_PORT={port}", f"LAB_ARGS=--no-browser --IdentityProvider.token={token}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Lab(process, port, token, log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"make lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        return served.json("/api/status") is not None

    try:
        wait_until(up, timeout=120, what="jupyter lab")
        yield served
    finally:
        try:
            served.json("/api/shutdown", method="POST")  # stops its kernels too
            process.wait(timeout=30)
        except Exception:
            pass
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_make_lab_listens_on_loopback_with_a_token_and_lists_the_notebooks(lab):
    listing = lab.json("/api/contents")
    names = {item["name"] for item in listing["content"]}
    assert {"getting_started.ipynb", "country_report.ipynb", "yearly_overview.ipynb"} <= names
    with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no notebooks
        urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/api/contents", timeout=10)
    assert refused.value.code == 403
    assert listening_addresses(lab.port) == {"0100007F"}  # 127.0.0.1 only: loopback by default
    extensions = {e["name"]: e for e in lab.json("/lab/api/extensions")}
    for name in EXTENSIONS:
        assert extensions[name]["enabled"] and extensions[name]["status"] == "ok", name


def test_the_getting_started_notebook_runs_in_the_lab(lab, page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(lab.url("/lab/tree/getting_started.ipynb"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    choose = page.locator(".jp-Dialog button", has_text="Select")  # a fresh lab may ask which kernel to start
    try:
        choose.wait_for(timeout=15_000)
        choose.click()
    except PlaywrightTimeout:
        pass
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # The statistics table, then the Panel column with the Bokeh map (drawn on a canvas) come out of the kernel.
    try:
        page.wait_for_selector(".jp-OutputArea-output table", timeout=240_000)
        canvas = page.wait_for_selector(".jp-OutputArea-output canvas", timeout=240_000)
    except Exception:
        page.screenshot(path=str(lab.log.with_name("failed.png")))
        raise AssertionError(f"no output; the page shows: {page.locator('.jp-OutputArea-output').all_inner_texts()!r}; "
                             f"lab log: {lab.log.read_text()[-2000:]}") from None
    assert page.locator(".jp-OutputArea-output button", has_text="illegal").count() == 1
    page.locator(".jp-OutputArea-output >> text=Interactive run").wait_for(timeout=120_000)  # the last cell ran
    assert page.locator("text=No renderer could be found").count() == 0  # every output type has its extension
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    # The widget talks to the kernel: choosing "legal" redraws the map (the old canvas goes).
    page.locator(".jp-OutputArea-output button", has_text="legal").last.click()
    deadline = time.monotonic() + 60
    while canvas.evaluate("element => element.isConnected") and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert not canvas.evaluate("element => element.isConnected")
    assert page.locator(".jp-OutputArea-output canvas").count() >= 1
    assert problems == []
