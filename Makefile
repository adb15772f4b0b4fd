# The two commands of the README: `make report` and `make test`.
# Both create a virtual environment in .venv (Python 3.11+), install the package with its
# pinned dependencies, then do their work. Re-running skips the install until
# pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= reports
export MPLBACKEND := Agg

.PHONY: install install-spark report test test-spark test-browser lint format bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "anxiety-outcomes needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,spark]"
	@touch $@

install: $(VENV)/.installed

install-spark: $(VENV)/.installed-spark

## Render every report from the built-in synthetic cohort into $(OUT)/.
report: install
	$(BIN)/anxiety-outcomes report --out $(OUT)

## Lint, then the whole suite: unit and property tests, doctests, notebook checks.
test: install lint
	$(BIN)/python -m pytest -n 2 -m "not spark"

## The PySpark backend tests (needs Java 17+; installs the `spark` extra).
test-spark: install-spark
	$(BIN)/python -m pytest -m spark -p no:xdist

## The rendered reports in a real browser: Debian's chromium, headless, driven by Playwright
## (links, images, console errors, 1280 px width; screenshots in $(OUT)/screenshots).
test-browser: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(BIN)/python -m pip install --quiet -e ".[test,browser]"
	$(BIN)/python tests/browser/check_reports.py --out $(OUT)/browser --screenshots $(OUT)/screenshots

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks print ratios against a reference engine run on the same data.
bench: install
	$(BIN)/python benchmarks/derive.py
	$(BIN)/python benchmarks/mmrm.py
	$(BIN)/python benchmarks/synthetic.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache .hypothesis
