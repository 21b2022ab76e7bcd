# posebench: two commands for a fresh machine, `make demo` and `make test`.
# Everything installs itself into .venv; torch is pinned and installed first so that no
# dependency can make pip resolve an open-ended torch (which would pull a CUDA build).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed
NB_TIMEOUT ?= 900
OUT     ?= outputs/demo

.PHONY: help install demo test test-slow test-fast check export clean docs docs-check readme serve loadtest

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install posebench with its dev tools

demo: $(STAMP)  ## run the main job on the embedded default data
	$(BIN)/posebench demo --out $(OUT)

check: $(STAMP)  ## notebooks valid, clean, small, and in sync with posebench/
	$(BIN)/python tools/check_notebooks.py

test: check  ## run every notebook as a test (slow cells skipped) and the repo tests
	$(BIN)/python -m pytest tests -n 2 --dist load --timeout $(NB_TIMEOUT) -p no:cacheprovider

test-slow: check  ## also run the cells flagged `#| slow`
	POSEBENCH_TEST_FLAGS=slow $(BIN)/python -m pytest tests -n 2 --dist load --timeout 3600 -p no:cacheprovider

serve: $(STAMP)  ## start the pose service on 127.0.0.1:8000 (POST /pose/hybrid; settings: posebench serve --help)
	$(BIN)/posebench serve --host 127.0.0.1 --port 8000

loadtest: $(STAMP)  ## load-test the service on loopback with 1, 4 and 16 clients (bounded; prints throughput and latency)
	$(BIN)/python tools/loadtest.py

export: $(STAMP)  ## regenerate posebench/ and README.md from the notebooks
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export
	$(BIN)/python tools/build_docs.py --readme-only

docs: $(STAMP)  ## execute the notebooks and render the static docs site into _site/
	$(BIN)/python tools/build_docs.py --out _site

docs-check: docs  ## screenshot the docs in headless Chromium and fail on blank pages
	$(BIN)/python tools/check_docs.py _site

clean:  ## remove generated outputs (keeps .venv)
	rm -rf outputs _site _docs .pytest_cache
