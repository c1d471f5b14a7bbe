# ForestGuard — `make demo` and `make test` are the two commands (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DB     ?= data/forestguard.duckdb
DEMO_ZONES ?= 1000000
PYTEST_ARGS ?=

INSTALLED := $(VENV)/.installed

.PHONY: demo test bench lab venv system-deps clean help

help:
	@echo "make demo    set up, generate $(DEMO_ZONES) demo zones into $(DB), print yearly statistics, run a report, serve the dashboard"
	@echo "make test    set up (Python env + PostgreSQL/PostGIS, redis-server, Chromium) and run the tests"
	@echo "make bench   run the benchmarks in bench/ (ours vs a peer, same data, same run)"
	@echo "make lab     JupyterLab on notebooks/ (http://$(LAB_IP):$(LAB_PORT)/lab) with DATABASE_URL set to the demo store $(DB)"

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(DB): | $(INSTALLED)
	$(BIN)/forestguard demo --db $(DB) --zones $(DEMO_ZONES)

REPORTS ?= data/reports/demo
SERVE  ?= 1
PORT   ?= 8501

demo: $(INSTALLED) $(DB)
	$(BIN)/forestguard stats --db $(DB) --by year
	$(BIN)/forestguard report run notebooks/country_report.ipynb -p country=Brazil -p years=2019-2024 --source $(DB) --out $(REPORTS)
	@echo "country report: $$(ls $(REPORTS)/*.html | head -1)"
ifeq ($(SERVE),1)
	@echo "serving the dashboard on port $(PORT) (Ctrl-C stops it; make demo SERVE=0 skips serving)"
	$(BIN)/forestguard serve --db $(DB) --port $(PORT) --warm
endif

# JupyterLab for researchers: notebooks/ with the demo store as DATABASE_URL, on loopback unless LAB_IP says otherwise.
# LAB_ARGS passes more options, e.g. LAB_ARGS=--no-browser on a server.
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
LAB_ARGS ?=
LAB_DIR  ?= notebooks
# Offline: no extension manager querying PyPI, no news feed, no update check. Jupyter refuses to
# run as root unless told (containers and CI run as root).
LAB_OFFLINE := --LabApp.extension_manager=readonly --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)

lab: $(INSTALLED) $(DB)
	DATABASE_URL=$(abspath $(DB)) FORESTGUARD_DATA_DIR=$(abspath $(dir $(DB))) \
	  $(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_DIR) --ServerApp.ip=$(LAB_IP) --ServerApp.port=$(LAB_PORT) $(LAB_OFFLINE) $(LAB_ROOT) $(LAB_ARGS)

system-deps:
	bash scripts/system-deps.sh

test: $(INSTALLED) system-deps
	FORESTGUARD_REQUIRE_SERVICES=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(INSTALLED)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
