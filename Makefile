# The two commands of the README: `make report` and `make test`.
# Both create a virtual environment in .venv (Python 3.11+), install the package with its
# pinned dependencies (the core and the plots, reports, engines and test extras), then do
# their work. Re-running skips the install until pyproject.toml changes.
# For maintainers: `make test-fast` (fewer property-test examples), `make docs` (the Sphinx
# site in docs/_build/html), `make test-wheel` (build sdist and wheel, install the wheel in
# a fresh environment outside the repository and run the command line there).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= reports
export MPLBACKEND := Agg

.PHONY: install install-spark install-docs report test test-fast test-spark test-wheel \
	test-browser docs lint format bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "anxiety-outcomes needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,spark]"
	@touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	@touch $@

install: $(VENV)/.installed

install-spark: $(VENV)/.installed-spark

install-docs: $(VENV)/.installed-docs

## Render every report from the built-in synthetic cohort into $(OUT)/.
report: install
	$(BIN)/anxiety-outcomes report --out $(OUT)

## Lint, then the whole suite: unit and property tests, doctests, notebook checks.
## The report notebooks run once per run; every property test draws its full count.
## mypy (the slow part of `make lint`: about 26 s of CPU without its cache in .mypy_cache)
## runs beside pytest (niced: the tests come first), its output held until they end; either
## failing fails the target.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@log=$$(mktemp); nice $(BIN)/mypy >"$$log" 2>&1 & typing=$$!; \
	HYPOTHESIS_PROFILE=full $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not spark"; \
	tests=$$?; wait $$typing; typed=$$?; echo "mypy:"; cat "$$log"; rm -f "$$log"; \
	test $$tests -eq 0 && test $$typed -eq 0

## The same suite with few examples per property test: a quick check while working.
test-fast: install
	HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not spark"

## The PySpark backend tests (needs Java 17+; installs the `spark` extra).
test-spark: install-spark
	$(BIN)/python -m pytest -m spark -p no:xdist

## The wheel as a new user gets it: build the sdist and the wheel, install the wheel with
## the reports extra into a fresh environment outside the repository, then validate a
## synthetic data folder and render the data-quality report there.
test-wheel: install
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	wheel=$$(ls "$$PWD"/dist/anxiety_outcomes-*.whl); \
	cd "$$tmp"; \
	$(PYTHON) -m venv venv; \
	venv/bin/python -m pip install --quiet "$$wheel[reports]"; \
	venv/bin/anxiety-outcomes --version; \
	venv/bin/anxiety-outcomes synth --patients 120 --seed 3 --out data; \
	venv/bin/anxiety-outcomes validate data; \
	venv/bin/anxiety-outcomes report data --out reports --only 01_data_quality; \
	test -s reports/01_data_quality.html; \
	venv/bin/python -c 'import analysis, json, sys; m = json.load(open("reports/manifest.json")); sys.exit(m["package_version"] != analysis.__version__)'; \
	echo "wheel OK: validate and report ran from $$wheel"

## The documentation site in docs/_build/html (warnings are errors). The rendered demo
## reports are built first and copied into the site.
docs: install-docs
	$(BIN)/anxiety-outcomes report --out docs/_build/demo-reports
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

## The rendered reports in a real browser: Debian's chromium, headless, driven by Playwright
## (links, images, console errors, 1280 px width; screenshots in $(OUT)/screenshots).
test-browser: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(BIN)/python -m pip install --quiet -e ".[test,browser]"
	$(BIN)/python tests/browser/check_reports.py --out $(OUT)/browser --screenshots $(OUT)/screenshots

## ruff (lint and format), then mypy over analysis/ (configured in pyproject's [tool.mypy]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks print ratios against a reference engine run on the same data.
bench: install
	$(BIN)/python benchmarks/derive.py
	$(BIN)/python benchmarks/mmrm.py
	$(BIN)/python benchmarks/synthetic.py
	$(BIN)/python benchmarks/kernel_latency.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache .hypothesis dist build docs/_build docs/api/generated
