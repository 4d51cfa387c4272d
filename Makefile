# Two entry points: `make demo` (the main job on the embedded sample) and `make test`.
# Both create .venv and install restorelab with its dev extras the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.restorelab-installed

.PHONY: demo test lint dashboard clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/restorelab demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

dashboard: $(STAMP)
	$(BIN)/restorelab dashboard runs/demo/run

clean:
	rm -rf runs .pytest_cache .ruff_cache
