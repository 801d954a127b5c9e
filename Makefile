# Two entry points for a fresh clone (see README):
#   make book   set up .venv, execute every notebook with papermill (quick profile), build the HTML book
#   make test   set up .venv, execute every notebook once (the book), then the unit, notebook and browser tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
# A local copy of the data beside the checkout stands in for the downloads (see README)
ifeq ($(origin BAMF_DATA_DIR),undefined)
  ifneq ($(wildcard ../shared/data),)
    export BAMF_DATA_DIR := $(abspath ../shared/data)
  endif
endif

# The lock pins torch's CPU build (torch==X+cpu), which PyTorch publishes on its own index, not on
# PyPI: install it alone from there first, then everything else from PyPI (see requirements.lock)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: setup book lint test notebooks clean

$(BIN)/bamf: requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(PIP) --no-deps --extra-index-url $(TORCH_INDEX) "$$(grep '^torch==' requirements.lock)"
	$(PIP) -r requirements.lock
	$(PIP) --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(BIN)/bamf

book: setup
	$(BIN)/bamf reproduce --profile $(PROFILE)

# Lint and format check of the Python files (configured in pyproject.toml): seconds, so first
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each notebook is executed once: papermill runs the chapters for the book, then pytest runs the
# unit tests, checks every executed chapter (tests/test_notebooks.py) and opens the built book.
# A lint or format violation fails before any of that starts.
test: setup lint
	$(BIN)/bamf reproduce --profile $(PROFILE)
	BAMF_BOOK_REQUIRED=1 $(BIN)/python -m pytest tests bamf_lib -p no:cacheprovider

clean:
	rm -rf _build build book/executed
