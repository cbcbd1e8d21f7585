# newswire — `make help` lists the targets.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
NW     := $(VENV)/bin/newswire
STAMP  := $(VENV)/.installed
# The peer benchmark's venv: quixstreams pins confluent-kafka and pydantic below what the
# dev venv resolves to, so it gets its own (pyproject's `bench` extra: quixstreams, py-spy).
# newswire needs confluent-kafka>=2.16 (its schema-registry mode) and quixstreams <2.13, so
# one resolve fails: newswire goes in first, then the extra, which downgrades confluent-kafka
# (pip warns; the benchmark's jobs use no registry, and the adapter runs on 2.12).
BENCH_VENV  ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# Long benchmarks with targets of their own, left out of `make bench`.
LONG_BENCH := benchmarks/bench_peers.py benchmarks/bench_e2e.py
ARGS ?=
# Where `make run` keeps its store.
RUN_DIR ?= .newswire

.DEFAULT_GOAL := help
.PHONY: help install run test lint format bench bench-dedup-scale bench-peers bench-e2e bench-venv eval-dedup eval-language clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install newswire with its dev extras

$(STAMP): pyproject.toml examples/newswire-keywords/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e examples/newswire-keywords
	@touch $@

run: install ## Run the embedded pipeline on the bundled sample data
	@mkdir -p $(RUN_DIR)
	@# Exit status 1 means "some input rejected": the samples hold two malformed documents on
	@# purpose (samples/bad_*.txt), so for make that is the expected success.
	@$(NW) run samples --store sqlite:///$(RUN_DIR)/newswire.db --until-idle; rc=$$?; \
	if [ $$rc -eq 1 ]; then \
		echo "make run: ok (exit status 1 is expected: samples/bad_*.txt are malformed on purpose, to show the rejects)"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

# A few real-broker tests are timing-sensitive on a loaded 2-core machine (Tansu group joins,
# kill -9 windows): a failure is re-run up to twice and reported as RERUN, never hidden.
test: install ## Run the test suite (unit, integration against a real broker on each Kafka client, e2e)
	$(PY) -m pytest -n 2 --reruns 2 --reruns-delay 2

lint: install ## ruff (lint + format check), mypy, import contracts (pyproject.toml), schemas
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(NW) schemas check

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## Stage and producer benchmarks (bench_*.py but peers/e2e), ratios to a baseline of the same run
	@for b in $(filter-out $(LONG_BENCH),$(wildcard benchmarks/bench_*.py)); do \
		echo "== $$b"; $(PY) $$b || exit 1; done

bench-dedup-scale: install ## Dedup's cost per article with 1M articles remembered vs 10k, memory and startup (no Kafka)
	$(PY) benchmarks/bench_dedup.py --no-kafka $(ARGS)

bench-venv: $(BENCH_STAMP) ## Create .venv-bench with the bench extra (Quix Streams, py-spy)

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e .
	$(BENCH_VENV)/bin/python -m pip install -q $$($(PYTHON) -c 'import tomllib; print(" ".join(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
	@touch $@

bench-peers: $(BENCH_STAMP) ## newswire's stages vs the same jobs on Quix Streams, same bytes (ARGS="--articles 100000")
	$(BENCH_VENV)/bin/python benchmarks/bench_peers.py $(ARGS)

bench-e2e: install ## `newswire run` end to end: CPU per article (all processes), rate, RSS, p99 latency at 1k/s
	$(PY) benchmarks/bench_e2e.py $(ARGS)

eval-dedup: install ## Dedup evaluation: recall per kind, false merges
	$(PY) benchmarks/eval_dedup.py

eval-language: install ## Language-id evaluation on the newspaper4k gold pages (target 100 %)
	$(PY) benchmarks/eval_language.py

clean: ## Remove the venv, caches and local run data
	rm -rf $(VENV) $(BENCH_VENV) .newswire .pytest_cache .mypy_cache .ruff_cache
