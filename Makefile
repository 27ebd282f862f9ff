# The two commands of README.md: `make demo` and `make test`. Both start from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
DEMO_DB ?= sqlite:///demo.db
PYTEST_ARGS ?=
# `make test` runs the suite on SQLite, leaving out the minutes-long `slow` tests and the PostgreSQL
# half (tests marked `postgres`); `make test TEST_MARKERS=` (as .ci/run does) runs all of them,
# `make test TEST_MARKERS="not slow"` adds PostgreSQL only (docs/decisions.md, "The test suite").
TEST_MARKERS ?= not slow and not postgres
BENCH_ARGS ?=

.PHONY: install vendor demo test lint bench fuzz fuzz-ci clean

CHROMIUM := /usr/bin/chromium
VENDOR_LOCK := slatecrm/platform/web/static/vendor.lock.json

# The packages are installed by uv (from PyPI, into the venv by the venv's pip) in one resolver
# run, downloads in parallel: measured here, 14 s for what took pip (upgraded first, then two
# runs) over a minute. --compile-bytecode writes the .pyc files as pip would, so a command's
# start does not compile its imports every time. The venv keeps its own pip.
# The browser tests drive Debian's Chromium through Playwright (never a browser download of Playwright's own).
# The test plugin (a `color` field type, found through the `slatecrm` entry point) proves
# that a plugin's type works in every layer; the tests expect it installed.
EXAMPLE_PLUGIN := tests/plugins/slatecrm_example_plugin

$(STAMP): pyproject.toml $(VENDOR_LOCK) scripts/fetch_vendor.py $(EXAMPLE_PLUGIN)/pyproject.toml
	@test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)
	$(PYTHON) scripts/fetch_vendor.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]' -e $(EXAMPLE_PLUGIN)
	touch $(STAMP)

install: $(STAMP)

# Quick when the files are there and match the lock; fetches them again when not.
vendor:
	@$(PYTHON) scripts/fetch_vendor.py

# The demo administrator comes after the sample data (which gives records to the users it finds,
# making its own only when there are none), and only when there is no administrator yet: its
# generated password is printed that once (`slatecrm user set-password admin@example.com` sets another).
demo: $(STAMP) vendor
	$(BIN)/slatecrm init --database $(DEMO_DB)
	$(BIN)/slatecrm pack list --database $(DEMO_DB)
	$(BIN)/slatecrm sample-data --if-empty --database $(DEMO_DB)
	$(BIN)/slatecrm init --no-default-packs --database $(DEMO_DB) --admin-email admin@example.com \
		--admin-name "Demo administrator" --generate-password
	@echo "SlateCRM on http://127.0.0.1:8000/ (JSON API: /api/v1/meta, OpenAPI: /api/v1/openapi.json), with a workflow worker in the server (serve --worker); Ctrl-C stops both"
	$(BIN)/slatecrm serve --worker --database $(DEMO_DB)

# The API fuzz tests (tests/test_api_fuzz.py) send 1,500 generated requests per test in a full
# run (`TEST_MARKERS=`, as .ci/run makes it) and 300 in `make test`, which leaves out the slow
# tests too: at 1,500 they were the suite's largest CPU cost (26 of 170 s measured here).
# A SLATECRM_FUZZ_EXAMPLES in the environment wins.
FUZZ_EXAMPLES := $(if $(TEST_MARKERS),300,1500)

# Two workers, one per core. worksteal: each worker starts on a contiguous half of the tests (a
# module's fixtures are built on one worker, not both) and takes work from the other when its
# own runs out. Bytecode is written (the machine may say PYTHONDONTWRITEBYTECODE=1), so the
# servers and commands that tests start as subprocesses, and the second worker, compile nothing.
test: $(STAMP) vendor
	SLATECRM_FUZZ_EXAMPLES=$${SLATECRM_FUZZ_EXAMPLES:-$(FUZZ_EXAMPLES)} PYTHONDONTWRITEBYTECODE= \
		$(BIN)/python -m pytest -n 2 --dist worksteal $(if $(TEST_MARKERS),-m "$(TEST_MARKERS)") $(PYTEST_ARGS)
	$(BIN)/ruff check slatecrm tests bench
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check slatecrm tests bench
	$(BIN)/mypy

# `make bench` writes bench/results/report.{md,json} and publishes docs/benchmarks.{md,json};
# `make bench QUICK=1` is the small smoke run (results only). BENCH_ARGS: e.g. --rows 200000.
# The HTTP scenario loads the servers with wrk (Debian's package), installed like Chromium above;
# where it cannot be installed the bench falls back to its Python load generator (bench/findings.md).
bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk) \
		|| echo "wrk could not be installed: the HTTP scenario uses the Python load generator"
	$(BIN)/python -m bench $(if $(QUICK),--quick,--publish docs) $(BENCH_ARGS)

# schemathesis with every check against a live `slatecrm serve` (default packs, sample data) on
# SQLite and PostgreSQL (SLATECRM_TEST_POSTGRES_URL): scripts/fuzz.py. `fuzz-ci` is the short run
# .ci/run makes (without the slow coverage phase); `make fuzz` the longer one with every phase.
# FUZZ_ARGS: e.g. --seed 7 --keep /tmp/fuzz.
FUZZ_ARGS ?=
fuzz-ci: $(STAMP)
	$(BIN)/python scripts/fuzz.py --database sqlite --database postgresql --max-examples 10 \
		--phases examples,fuzzing,stateful --max-time 120 $(FUZZ_ARGS)

fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --database sqlite --database postgresql --max-examples 100 \
		--max-time 1200 $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo.db*
