# Two commands a newcomer needs: `make demo` and `make test`.  Everything installs into .venv
# from this repository's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo

.PHONY: install demo test test-fast clean

$(STAMP): pyproject.toml tests/siyu-weibo/pyproject.toml tests/siyu-testplatform/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -e ./tests/siyu-weibo -e ./tests/siyu-testplatform
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/siyu plugins
	$(BIN)/siyu demo --dir $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
