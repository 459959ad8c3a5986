# dlbook: `make book` builds the HTML book, `make test` runs every test, `make lab` opens JupyterLab.
# Each target creates .venv and installs the locked dependencies when they are missing or stale.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# MathJax 3, served from the built book (no CDN): the pinned npm package, installed into the
# git-ignored _vendor/ and copied to _vendor/static/mathjax/ (see html_static_path in _config.yml).
MATHJAX_VERSION := 3.2.2
MATHJAX_STAMP   := _vendor/.mathjax-$(MATHJAX_VERSION)
# axe-core, the accessibility engine the browser test injects into every page (WCAG 2.1 AA).
# Test-only: it goes to _vendor/axe-core/, outside html_static_path, so the book never ships it.
AXE_VERSION     := 4.14.1
AXE_STAMP       := _vendor/.axe-core-$(AXE_VERSION)
# The browser test drives Debian's Chromium; `make test` installs it with apt-get when missing.
CHROMIUM        ?= /usr/bin/chromium

.PHONY: book test unit nbval nbval-kernels browser chromium lab lock notebooks bench grade release clean help

help:
	@echo "make book       build the HTML book into _build/html"
	@echo "make test       build the book, then unit tests + nbval + the browser test of the built book"
	@echo "make lab        open the notebooks in JupyterLab with the .venv kernel"
	@echo "make notebooks  re-execute every chapter notebook in place (after changing src/dlbook)"
	@echo "make nbval-kernels  nbval under two CPU kernel choices (run by hand before committing notebooks)"
	@echo "make lock       regenerate requirements-lock.txt from requirements.in"
	@echo "make bench      time dlbook's convolution and LSTM (forward + backward) against PyTorch's, and the grader"
	@echo "make grade EXERCISE=ch3-conv2d SUBMISSIONS=dir/ [OUT=grading-out] [JOBS=2] [SECRET=key-file]"
	@echo "make release DIR=handout   write what students get into a new folder"
	@echo "                grade a folder of student notebooks (see exercises/README.md)"

$(STAMP): requirements-lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

$(MATHJAX_STAMP):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to install MathJax: apt-get install npm"; exit 1; }
	rm -rf _vendor/npm _vendor/static/mathjax _vendor/.mathjax-*
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix _vendor/npm mathjax@$(MATHJAX_VERSION)
	mkdir -p _vendor/static/mathjax
	cd _vendor/npm/node_modules/mathjax/es5 && cp -r tex-mml-chtml.js input output ui a11y sre adaptors ../../../../static/mathjax/
	rm -rf _vendor/npm
	@touch $@

$(AXE_STAMP):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to install axe-core: apt-get install npm"; exit 1; }
	rm -rf _vendor/npm-axe _vendor/axe-core _vendor/.axe-core-*
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix _vendor/npm-axe axe-core@$(AXE_VERSION)
	mkdir -p _vendor/axe-core
	cp _vendor/npm-axe/node_modules/axe-core/axe.min.js _vendor/npm-axe/node_modules/axe-core/LICENSE _vendor/axe-core/
	rm -rf _vendor/npm-axe
	@touch $@

book: $(STAMP) $(MATHJAX_STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "open _build/html/index.html"

test: book unit nbval browser

unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests --ignore=tests/test_book_browser.py

# Two workers, one notebook at a time each (--dist loadfile keeps a notebook's cells in order in one
# kernel): on two cores this halves the time of the largest part of `make test`.
nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval -p no:cacheprovider -n 2 --dist loadfile chapters

# By hand, not in `make test`: the stored outputs must not depend on the CPU kernels (README).
nbval-kernels: $(STAMP)
	PY=$(BIN)/python tools/nbval-kernels

# Headless Chromium over every page of _build/html, served on localhost with the network cut off.
browser: book chromium $(AXE_STAMP)
	DLBOOK_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n 2 tests/test_book_browser.py

chromium:
	@test -x $(CHROMIUM) || test "$$(id -u)" != 0 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || true
	@test -x $(CHROMIUM) || echo "Chromium is missing: install it with 'sudo apt-get install chromium' (the browser test fails without it)"

# JupyterLab from .venv: its default python3 kernel is the .venv interpreter, with dlbook installed.
# (Jupyter refuses to run as root without --allow-root; containers often run as root.)
lab: $(STAMP)
	$(BIN)/jupyter lab chapters $(LAB_ARGS) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

notebooks: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py chapters

# A benchmark, not a test: prints a table (dlbook vs torch, float32), never fails on slow timings.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_conv.py
	$(BIN)/python benchmarks/bench_lstm.py
	$(BIN)/python benchmarks/bench_grader.py

# Grade a folder of submissions: writes $(OUT)/gradebook.csv and one JSON of feedback per notebook.
OUT  ?= grading-out
JOBS ?= 2
SECRET ?=
grade: $(STAMP)
	@test -n "$(EXERCISE)" -a -n "$(SUBMISSIONS)" || \
	  { echo "usage: make grade EXERCISE=<id> SUBMISSIONS=<notebooks or folders> [OUT=grading-out] [JOBS=2] [SECRET=<key file>]"; \
	    $(BIN)/dlbook exercises; exit 2; }
	$(BIN)/dlbook grade $(EXERCISE) $(SUBMISSIONS) --out $(OUT) --jobs $(JOBS) $(if $(SECRET),--secret-file $(SECRET))

# The student handout: student notebooks and a README on how to work and hand in, nothing else.
release: $(STAMP)
	@test -n "$(DIR)" || { echo "usage: make release DIR=<new folder>"; exit 2; }
	$(BIN)/dlbook exercises --release $(DIR)

lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.in
	( echo "# Exact versions used by CI and by the committed notebook outputs. Generated by \`make lock\`."; \
	  echo "# torch==2.13.0 resolves to the CPU build on disk (/opt/wheels); a looser pin would pull a CUDA build."; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' ) > requirements-lock.txt

clean:
	rm -rf _build _vendor
