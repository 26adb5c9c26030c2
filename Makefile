# Two commands a newcomer needs: `make demo` and `make test`.  Everything installs into .venv
# from this repository's own files.  A user's install (`make install`, `make demo`) holds only
# the project; the test-only plugins (tests/siyu-weibo, tests/siyu-testplatform) are installed
# by `make test` (`make install-test`), never for a user.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO := demo

.PHONY: install install-test demo test test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes siyu-weibo siyu-testplatform 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(TEST_STAMP)
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml tests/siyu-weibo/pyproject.toml tests/siyu-testplatform/pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]" -e ./tests/siyu-weibo -e ./tests/siyu-testplatform
	touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/siyu plugins
	$(BIN)/siyu demo --dir $(DEMO)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
