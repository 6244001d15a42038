# Two set-up commands for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel of torch pinned for this environment; users elsewhere may use any torch >= 2.4.
TORCH ?= torch==2.13.0
export MLPLAB_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: venv install install-test demo test bench bench-pack mutate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .

install-test: install
	$(BIN)/pip install -q -e ".[test]"

demo: install
	$(BIN)/mlplab reproduce --out reports/tutorial

test: install-test
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/run.py --wait-idle 120 --rounds 3 --scaling --inference --update-readme
	$(BIN)/python bench/bf16.py --update
	$(MAKE) bench-pack

# Packed training against one seed after another (bench/README.md, "Packed training"): a few minutes.
bench-pack: install
	nice $(BIN)/python bench/pack.py --rounds 3 --reproduce 5 --json bench/results/pack-latest.json

# Mutation testing of the modules listed in pyproject's [tool.mutmut] (docs/testing.md): slow, not
# part of CI. MUTANTS="mlplab.report.*" limits a run to some modules; MUTATE_JOBS sets parallel workers.
MUTANTS ?=
MUTATE_JOBS ?= 1
mutate: install-test
	$(BIN)/pip install -q -e ".[mutate]"
	OMP_NUM_THREADS=1 nice $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/python tools/mutation_score.py --survivors

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache mutants
