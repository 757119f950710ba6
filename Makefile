# xoelt — `make demo` runs the bundled pipeline on the embedded default; `make test` checks everything.
# Works on a machine with only python3 and make: uv is installed into .tools/ when absent, and
# if that fails the environment is built with venv + pip from requirements-dev.txt (exported from uv.lock).
# Bytecode is compiled at install: these machines set PYTHONDONTWRITEBYTECODE=1, and without .pyc
# files every start compiles every imported module again (`xoelt plan` twice as slow).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.xoelt-synced
UV     := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export XOELT_HOME ?= .xoelt

DEMO_DATES := 2026-11-03 2026-11-04 2026-11-05
IMAGE ?= xoelt:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: help install demo test unit lint typecheck pytest browser bench chaos lock clean helm-values image

help:
	@echo "make demo    run the demo pipeline and the estate end to end on the embedded default (DuckDB)"
	@echo "make test    ruff + ty + pytest (what CI runs)"
	@echo "make unit    the fast tier: tests/unit only (seconds)"
	@echo "make bench   benchmarks (not part of CI)"
	@echo "make chaos   the slow reliability tier (kills, signals, faults) and its table"
	@echo "make helm-values  regenerate the chart's pipeline list from pipelines/"

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock requirements-dev.txt
	@if [ ! -x "$(UV)" ]; then \
		echo "bootstrapping uv into .tools/"; \
		$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet "uv>=0.5,<1" || rm -rf .tools; \
	fi
	@if [ -x "$(UV)" ] || command -v uv >/dev/null 2>&1; then \
		$(UV) sync --frozen --all-groups --compile-bytecode --python $(PYTHON); \
	else \
		echo "uv unavailable: falling back to venv + pip"; \
		$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet -r requirements-dev.txt && \
		$(BIN)/pip install --quiet --no-deps -e . && \
		$(BIN)/python -m compileall -q -j 0 $(VENV)/lib; \
	fi
	@# xoelt itself is installed editable (src/ is not in site-packages): compile it too.
	@$(BIN)/python -m compileall -q -j 0 src
	@touch $@

demo: $(STAMP)
	@rm -rf $(XOELT_HOME)
	$(BIN)/python scripts/demo_data.py publish
	@for d in $(DEMO_DATES); do \
		$(BIN)/xoelt --log-format console run demo/gladly_demo --date $$d || exit $$?; \
	done
	$(BIN)/xoelt status demo/gladly_demo
	@# the run-history page of the demo's days (windows 2026-11-02..04), one self-contained file
	@echo "run-history report:"
	@$(BIN)/xoelt report demo/gladly_demo --until 2026-11-05 --days 7 --out $(XOELT_HOME)/report.html
	@# the estate: CORE_DB's roster, then WBP_DB and CND_DB (whose gold reads CORE_DB's), three
	@# recent days against the local fake APIs, `xoelt status` for each, and the README's table
	@echo "the estate (CORE_DB, WBP_DB, CND_DB) on the local fake APIs:"
	$(BIN)/python scripts/estate_data.py demo --days 3

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/ty check

unit: $(STAMP)
	$(BIN)/pytest -q -n 2 tests/unit

pytest: $(STAMP) browser
	$(BIN)/pytest -q -n 2

# Best effort: the report's browser test drives the OS Chromium (playwright's own browser
# download is not reachable). As root with apt-get it is installed; anywhere else, or if the
# install fails, the test is skipped with a message. Never fails the build.
browser:
	-@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (for the report's browser test)"; \
			(timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium) \
				>/dev/null 2>&1 || echo "chromium could not be installed: the browser test will be skipped"; \
		else echo "no chromium and no root for apt-get: the report's browser test will be skipped"; fi; } || true

test: lint typecheck pytest

# The slow reliability tier: kills at 22 points, signals, faults (full disk where root may
# mount a tmpfs), concurrent runs; then the table of what was injected and how it ended.
CHAOS_REPORT := $(XOELT_HOME)/chaos-report.jsonl
chaos: $(STAMP)
	@mkdir -p $(XOELT_HOME) && rm -f $(CHAOS_REPORT)
	XOELT_CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) $(BIN)/pytest -q -n 2 tests/reliability -m "chaos or not chaos" -p no:randomly; \
	status=$$?; $(BIN)/python -m tests.reliability.report $(CHAOS_REPORT); exit $$status

bench: $(STAMP)
	@# ends with one table of every headline figure ("benchmark figures, side by side")
	$(BIN)/pytest tests/benchmarks -m bench -s -q -p no:randomly

lock:
	$(UV) lock
	$(UV) export --frozen --all-groups --no-hashes --no-emit-project -q > requirements-dev.txt

clean:
	rm -rf $(VENV) .tools .xoelt .pytest_cache .ruff_cache

helm-values: $(STAMP)
	$(BIN)/xoelt helm-values --write helm/xoelt/values.yaml

image:
	docker build -t $(IMAGE) .
