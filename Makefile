# Every target that runs code first makes sure .venv exists and holds the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bufferzone demo --speed 8

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q benchmarks --benchmark-disable -m "not soak"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.end_to_end
	$(BIN)/python -m benchmarks.stonesoup_compare
	$(BIN)/python -m benchmarks.accuracy
	$(BIN)/python -m benchmarks.attack_mix
	$(BIN)/python -m benchmarks.restarts

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check fusion sensors replay tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .benchmarks
