# Quick start: `make demo` (set up + run the demo search), `make test` (set up + run the tests).
# Both are idempotent: the virtual environment is (re)built only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo smoke test test-fast lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tunedepth demo

smoke: $(STAMP)
	$(BIN)/tunedepth demo --smoke

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the edit loop: everything but the end-to-end runs on a real Ray (marked slow)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# lint and import order (ruff, configured in pyproject.toml); .ci/run runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff check .

# type check of the public API's modules (mypy, configured in pyproject.toml: [tool.mypy] files); .ci/run runs it
typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info
