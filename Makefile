# newswire — `make help` lists the targets.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
NW     := $(VENV)/bin/newswire
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench eval-dedup eval-language clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install newswire with its dev extras

$(STAMP): pyproject.toml examples/newswire-keywords/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e examples/newswire-keywords
	@touch $@

run: install ## Run the embedded pipeline on the bundled sample data
	@mkdir -p .newswire
	$(NW) run samples --store sqlite:///.newswire/newswire.db --until-idle

test: install ## Run the test suite (unit, integration against a real broker, e2e)
	$(PY) -m pytest

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(NW) schemas check

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## Benchmarks: every benchmarks/bench_*.py, ratios against a raw baseline of the same run
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

eval-dedup: install ## Dedup evaluation: recall per kind, false merges
	$(PY) benchmarks/eval_dedup.py

eval-language: install ## Language-id evaluation on the newspaper4k gold pages (target 100 %)
	$(PY) benchmarks/eval_language.py

clean: ## Remove the venv, caches and local run data
	rm -rf $(VENV) .newswire .pytest_cache .mypy_cache .ruff_cache
