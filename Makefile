# Two entry points for a fresh clone (see README):
#   make book   set up .venv, execute every notebook with papermill (quick profile), build the HTML book
#   make test   set up .venv, run the unit tests and the notebook tests (nbval)
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

.PHONY: setup book test notebooks clean

$(BIN)/bamf: requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(BIN)/bamf

book: setup
	$(BIN)/bamf reproduce --profile $(PROFILE)

# The browser test reads the built book, so the book is built (notebooks executed by
# papermill) before pytest runs the unit tests, nbval over every notebook, and that test.
test: setup
	$(BIN)/bamf reproduce --profile $(PROFILE)
	$(BIN)/python -m bamf_lib.reproduce convert build/notebooks
	$(BIN)/python -m pytest tests bamf_lib build/notebooks --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider

clean:
	rm -rf _build build book/executed
