# kolmatch: `make demo` runs the main job on the embedded store, `make test` runs every test.
# Each target creates .venv and installs what it needs; `make test` also starts and stops a
# local Neo4j server (scripts/neo4j, assembled from Maven artifacts) when Java and Maven exist.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SCALE ?= s
# the demo API's port: make demo PORT=8080
PORT ?= 8000

.PHONY: install demo test lint bench reliability-report neo4j-start neo4j-stop clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	scripts/retry $(BIN)/python -m pip install -q --retries 10 --timeout 60 --upgrade pip
	scripts/retry $(BIN)/python -m pip install -q --retries 10 --timeout 60 -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/kolmatch demo --port $(PORT)

test: install
	scripts/test

lint: install
	$(BIN)/ruff check kolmatch tests bench
	$(BIN)/ruff format --check kolmatch tests bench
	$(BIN)/mypy

# docs/reliability.md's tables from the last test run's ledger (build/reliability.json)
reliability-report: install
	$(BIN)/python -m tests.reliability.report build/reliability.json docs/reliability.md

# Neo4j runs only for its own steps: an idle server on the same 2 cores skewed the API figures.
# The offline-import step starts a server of its own (under WORK/neo4j-import) and stops it.
# l takes the Neo4j route (bench/run.py --from-neo4j, hours): generate, the offline import, then
# features, plan and assign reading that store; SQLite and the transactional load are optional
# there (bench/run.py --scale l without --from-neo4j; the transactional load alone ~2 h).
bench: install
ifeq ($(SCALE),l)
	$(BIN)/python bench/run.py --scale l --from-neo4j
else
	$(BIN)/python bench/run.py --scale $(SCALE) --no-neo4j
	scripts/with-neo4j $(BIN)/python bench/run.py --scale $(SCALE) --only neo4j
	$(BIN)/python bench/run.py --scale $(SCALE) --only neo4j-import
endif

neo4j-start:
	scripts/neo4j start

neo4j-stop:
	scripts/neo4j stop

clean:
	rm -rf .kolmatch kolmatch.db
