#!/usr/bin/env bash
# Debian packages the integration tests need, installed only when missing:
# PostgreSQL 15 + PostGIS 3 (with pg_basebackup), redis-server + redis-cli, Chromium (for the browser tests), GDAL's ogr2ogr (bench peer), ApacheBench (bench load).
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
ls /usr/share/postgresql/15/extension/postgis.control >/dev/null 2>&1 || need+=(postgresql-15-postgis-3)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)  # redis-cli --cluster create (cluster tests)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ogr2ogr >/dev/null 2>&1 || need+=(gdal-bin)
command -v ab >/dev/null 2>&1 || need+=(apache2-utils)  # ApacheBench: the HTTP load generator of bench/bench_api.py

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own on loopback ports.
for svc in redis-server postgresql; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
