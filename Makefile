# The two commands:  `make run` (start the app)  and  `make test` (the whole suite).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint setup bench clean

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/understudy serve $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	bash .ci/ensure-chromium
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/chain_overhead.py
	$(BIN)/python bench/app_streams.py
	$(BIN)/python bench/render_stream.py
	$(BIN)/python bench/hedging.py

clean:
	rm -rf $(VENV)
