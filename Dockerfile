# syntax=docker/dockerfile:1
# ForestGuard serving image: `forestguard serve` on 8501 (also runs report pipelines and
# db/snapshot commands with another command). Build: docker build -t forestguard .
FROM python:3.11-slim-bookworm

# Which pyproject extras the image carries: the dashboard server and the report pipelines.
# tests/deploy/test_image_env.py reads this line to build the same environment.
ARG FORESTGUARD_EXTRAS=dashboard,reports,scale

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    FORESTGUARD_DATA_DIR=/var/lib/forestguard

# postgresql-client (15 on bookworm, the server's major version): pg_dump/pg_restore for
# `forestguard db backup|restore`. Debian revisions are not pinned: the archive drops old ones.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 forestguard \
    && useradd --system --uid 10001 --gid forestguard --home-dir /var/lib/forestguard \
       --create-home --shell /usr/sbin/nologin forestguard \
    && python -m venv /opt/venv

WORKDIR /app

# Dependencies layer: only pyproject.toml and the tested versions (constraints.txt, as make and CI
# install them), so source edits reuse the cached layer.
COPY pyproject.toml constraints.txt ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in sys.argv[1].split(',') if e]; reqs = p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]; print('\n'.join(r for r in reqs if not r.startswith('forestguard')))" "$FORESTGUARD_EXTRAS" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt -c constraints.txt \
    && rm /tmp/requirements.txt

# Source layer: the package (non-editable, no dependency resolution left to do) and the
# notebooks, pipelines and dashboards that `forestguard` runs from the working directory.
COPY README.md ./
COPY forestguard/ ./forestguard/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info
COPY dashboards/ ./dashboards/
COPY notebooks/ ./notebooks/
COPY pipelines/ ./pipelines/

USER 10001:10001

EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/healthz', timeout=4)"]

CMD ["forestguard", "serve", "--address", "0.0.0.0", "--port", "8501"]
