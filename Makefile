# segflow: `make run` (whole pipeline on the default dataset) and `make test` (test suite).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.PHONY: help venv run test test-stack test-fast lint bench bench-speed browser
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

venv: $(STAMP)  ## create .venv and install pinned dependencies
# pip byte-compiles what it installs: with PYTHONDONTWRITEBYTECODE set, every stage, dvc and test
# subprocess would otherwise recompile dvc/mlflow/prefect/torch from source at each start.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: venv  ## run the whole pipeline on the default synthetic dataset (dvc repro) and print a summary
	bash infra/local/run.sh

browser:  ## install Debian's Chromium for the browser tests when it is missing (needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	@chromium --version

test: venv  ## run the test suite (what CI runs; the team-stack and scale-out tests are `make test-stack`)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not stack and not scaleout"

test-stack: venv  ## team stack (native Postgres, S3, MLflow, Prefect, Dask on 127.0.0.1) and scale-out (DDP, Dask folds) tests; CI runs them too
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "stack or scaleout"

test-fast: venv  ## unit tests only (skip slow ones)
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv  ## ruff (lint + format check) and mypy (components/, flows/); what CI and pre-commit run
	$(BIN)/ruff check components flows tests bench
	$(BIN)/ruff format --check components flows tests bench
	$(BIN)/mypy

bench: venv  ## run the benchmarks (JSON, with machine and device, under bench/results/)
	$(BIN)/python bench/metrics_speed.py
	$(BIN)/python bench/model_zoo.py

bench-speed: venv  ## segflow vs bare PyTorch (training, inference), the loader, stage start-up; --quick runs
	$(BIN)/python bench/train_throughput.py --quick
	$(BIN)/python bench/infer_throughput.py --quick
	$(BIN)/python bench/loader_throughput.py --quick
	$(BIN)/python bench/stage_overhead.py --quick
