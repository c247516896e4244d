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

.PHONY: help venv lock run test test-stack test-fast lint docs bench bench-speed bench-contention bench-gpu bench-gpu-wheels browser
help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

LOCK := requirements-lock.txt
# uv resolves and installs from the indexes pip is configured with (`pip config list`: files or PIP_*
# variables), e.g. this machine's local indexes that hold the torch wheel, so it finds what pip would;
# unsafe-best-match is pip's rule (best version over all indexes); the lock's hashes pin the files.
UV_INDEX_ARGS = --index-strategy unsafe-best-match $(shell $(PY) -m pip config list 2>/dev/null | \
  sed -n "s/^[^=]*\.\(index-url\|extra-index-url\|find-links\)='\(.*\)'$$/\1 \2/p" | \
  awk '{for (i = 2; i <= NF; i++) if (!seen[$$1 " " $$i]++) print "--" $$1, $$i}')

# .venv with uv, taken from the lock by pip (hash-checked); uv then installs the rest of the lock.
define venv_with_uv
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	test -x $(BIN)/uv || { awk '/^uv==/ {p = 1} p {print} p && !/\\$$/ {exit}' $(LOCK) > $(VENV)/uv-lock.txt \
	  && test -s $(VENV)/uv-lock.txt || { echo "$(LOCK) pins no uv: add it to requirements-dev.txt, run make lock" >&2; exit 1; }; \
	  $(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/uv-lock.txt; }
endef

venv: $(STAMP)  ## create .venv and install exactly requirements-lock.txt (every package, hash-checked), then segflow
# The lock must hold each top-level pin of requirements*.txt (else: run make lock). sync removes what the
# lock lacks and says so (its `+ name` lines are left out: a new .venv lists ~320). Byte-compiled: with
# PYTHONDONTWRITEBYTECODE set, every stage, dvc and test subprocess would otherwise recompile
# dvc/mlflow/prefect/torch from source at each start.
$(STAMP): $(LOCK) requirements.txt requirements-dev.txt pyproject.toml
	@awk 'FNR == NR { if (/^[a-z0-9]/) locked[$$1]; next } \
	  { sub(/#.*/, ""); gsub(/[ \t]/, ""); if (!/==/ || /^-/) next; split($$0, pin, "=="); \
	    name = tolower(pin[1]); sub(/\[.*\]/, "", name); gsub(/[-_.]+/, "-", name); \
	    if (!((name "==" pin[2]) in locked)) { print FILENAME ": " $$0 " is not in $(LOCK): run make lock" > "/dev/stderr"; bad = 1 } } \
	  END { exit bad }' $(LOCK) requirements.txt requirements-dev.txt
	$(venv_with_uv)
	set -o pipefail; $(BIN)/uv pip sync --python $(BIN)/python --require-hashes --compile-bytecode \
	  $(UV_INDEX_ARGS) $(LOCK) 2>&1 | { grep -v -e '^ + ' -e '^ - segflow==' || true; }
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock:  ## re-resolve requirements-lock.txt from requirements*.txt (others kept; LOCK_ARGS=--upgrade: all newest)
	$(venv_with_uv)
	$(BIN)/uv pip compile -q requirements-dev.txt -o $(LOCK) --python $(BIN)/python --generate-hashes \
	  --custom-compile-command 'make lock' $(UV_INDEX_ARGS) $(LOCK_ARGS)
	@echo "$(LOCK) written; make venv installs it"

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
	$(BIN)/ruff check components flows tests bench docs
	$(BIN)/ruff format --check components flows tests bench docs
	$(BIN)/mypy

# The site is built offline (theme.font: false, no plugin that fetches) and strictly: a broken link or
# anchor, a page missing from the nav or a generator that fails stops the build. docs/gen/hooks.py
# generates the params, CLI, zoo, planning-rules, artifact and error references at each build.
docs: venv  ## build the documentation site into site/ (mkdocs build --strict; what CI runs)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --clean --site-dir site

bench: venv  ## run the benchmarks (JSON, with machine and device, under bench/results/)
	$(BIN)/python bench/metrics_speed.py
	$(BIN)/python bench/model_zoo.py

bench-contention: venv  ## predict and a training step, quiet and beside a busy process per core (threads rule vs defaults)
	$(BIN)/python bench/contention.py

GPU_SITE ?= /tmp/segflow-gpu-site
GPU_PLATFORMS = $(foreach n,2_28 2_27 2_17,--platform manylinux_$(n)_x86_64) --platform manylinux2014_x86_64
bench-gpu-wheels: venv  ## download the GPU check's wheels (bench/gpu_wheels.txt, cp312) into .whl/ (carry it)
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_PLATFORMS) -d .whl -r bench/gpu_wheels.txt

bench-gpu:  ## the GPU check on a lent GPU machine (python3 with CUDA torch; wheels from .whl/): JSON in bench/results/
	@if ls .whl/*.whl >/dev/null 2>&1; then python3 -m pip install -q --no-index --no-deps --no-compile \
		--no-cache-dir --upgrade --target $(GPU_SITE) .whl/*.whl; fi
	PYTHONPATH=$(GPU_SITE)$${PYTHONPATH:+:$$PYTHONPATH} PYTHONUNBUFFERED=1 python3 bench/gpu_check.py $(GPU_ARGS)

bench-speed: venv  ## segflow vs bare PyTorch (training, inference), the loader, stage start-up; --quick runs
	$(BIN)/python bench/train_throughput.py --quick
	$(BIN)/python bench/infer_throughput.py --quick
	$(BIN)/python bench/loader_throughput.py --quick
	$(BIN)/python bench/stage_overhead.py --quick
	$(BIN)/python bench/precision.py
