"""The serving image's environment, built without Docker, serves /healthz.

There is no Docker engine on the development and CI machines, so this builds what the
Dockerfile builds: the files its COPY lines take from the build context are staged into an
application folder (the image's WORKDIR), a fresh virtual environment gets a normal,
non-editable `pip install` of that folder with the extras the Dockerfile names
(ARG FORESTGUARD_EXTRAS) and the constraints file its install names, and `forestguard serve` is started from the venv on a free
loopback port with an empty FORESTGUARD_DATA_DIR and no other ForestGuard configuration.
The test polls /healthz until it answers 200 (or the deadline passes), runs the
Dockerfile's own HEALTHCHECK command against it, and stops the server.

Slow (a full dependency install; pip's cache makes repeats faster): marked `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.test_templates import dockerfile_instructions
from tests.fixtures.services import stop_process

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
INSTALL_TIMEOUT_S = 1800
STARTUP_DEADLINE_S = 180
IGNORED_IN_CONTEXT = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


def image_extras() -> str:
    (extras,) = [
        args.split("=", 1)[1]
        for op, args in dockerfile_instructions()
        if op == "ARG" and args.startswith("FORESTGUARD_EXTRAS=")
    ]
    return extras


def copied_sources() -> list[str]:
    """Build-context paths the Dockerfile copies into the image (COPY src… dest)."""
    sources = []
    for op, args in dockerfile_instructions():
        if op == "COPY":
            words = [w for w in args.split() if not w.startswith("--")]
            sources.extend(w.rstrip("/") for w in words[:-1])
    return sources


def image_constraints() -> str | None:
    """The constraints file the Dockerfile's dependency install uses (``-c FILE``), if any."""
    for op, args in dockerfile_instructions():
        for command in args.split("&&") if op == "RUN" else []:
            words = command.split()
            if words[:2] == ["pip", "install"] and "-c" in words:
                return words[words.index("-c") + 1]
    return None


def healthcheck_command() -> list[str]:
    (args,) = [args for op, args in dockerfile_instructions() if op == "HEALTHCHECK"]
    return json.loads(args.split("CMD", 1)[1].strip())


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image_env(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    app.mkdir()
    for source in copied_sources():
        origin = REPO_ROOT / source
        assert origin.exists(), f"the Dockerfile copies {source}, which the repository does not have"
        if origin.is_dir():
            shutil.copytree(origin, app / source, ignore=IGNORED_IN_CONTEXT)
        else:
            shutil.copy2(origin, app / source)

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    constraints = image_constraints()
    assert constraints is None or (app / constraints).is_file(), f"the Dockerfile installs with -c {constraints} but does not copy it"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", f"{app}[{image_extras()}]", *(["-c", str(app / constraints)] if constraints else [])],
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    return {"root": root, "app": app, "venv": venv, "python": python}


@pytest.fixture(scope="module")
def served(image_env):
    """`forestguard serve` from the fresh venv; yields its base URL once /healthz is 200."""
    python, venv, root = image_env["python"], image_env["venv"], image_env["root"]
    names = subprocess.run(
        [str(python), "-c", "import json, forestguard.config as c; print(json.dumps(sorted(c.VARIABLES)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data_dir = root / "empty-data"
    data_dir.mkdir()
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in set(json.loads(names.stdout))}
    env.update(
        FORESTGUARD_DATA_DIR=str(data_dir),
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("VIRTUAL_ENV", None)

    port = free_loopback_port()
    log_path = root / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "forestguard"), "serve", "--port", str(port), "--address", "127.0.0.1"],
            cwd=image_env["app"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        last_error = "no attempt"
        while True:
            if process.poll() is not None:
                pytest.fail(f"forestguard serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last_error = repr(error)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"/healthz not 200 within {STARTUP_DEADLINE_S} s ({last_error}):\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.5)
        yield {"url": base_url, "port": port, "python": python}
    finally:
        stop_process(process, timeout=20)


def test_fresh_venv_serves_healthz(served):
    started = time.monotonic()
    with urllib.request.urlopen(f"{served['url']}/healthz", timeout=5) as response:
        assert response.status == 200
    assert time.monotonic() - started < 2, "liveness must answer at once"


def test_dockerfile_healthcheck_command_passes_against_it(served):
    command = healthcheck_command()
    assert command[0] == "python"
    code = [part.replace(":8501/", f":{served['port']}/") for part in command[1:]]
    assert any(f":{served['port']}/healthz" in part for part in code)
    result = subprocess.run([str(served["python"]), *code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
