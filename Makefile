# Two commands from a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP_OPTS := -q -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export OMP_NUM_THREADS ?= 1
export MPLBACKEND := Agg

.PHONY: env demo test bench mutate clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_OPTS) -e '.[dev,train,notebooks,dask,docs,onnx]'
	touch $@

env: $(VENV)/.installed
	@$(VENV)/bin/norsim warmup

demo: env
	$(VENV)/bin/norsim demo --out out/demo

test: env
	$(PY) -m pytest -q

# both sides of every ratio on the same threads: numba and BLAS pinned to BENCH_THREADS by
# benchmarks/_threads.py, recorded in each JSON line (docs/benchmarks.md)
BENCH_THREADS ?= 2
bench: env
	for b in benchmarks/bench_*.py; do echo "== $$b"; \
	  NORSIM_BENCH_THREADS=$(BENCH_THREADS) OMP_NUM_THREADS=$(BENCH_THREADS) $(PY) $$b || exit 1; done

# mutation testing of the core (issue 26; not part of `make test`): docs/testing.md.
# Resumable: each finished mutant is journaled (results/mutation/journal.jsonl) and a rerun
# skips those whose module, tests and scripts/mutants.py are unchanged; add --no-journal
# to MUTATE_ARGS to run every mutant again, --journal PATH for another journal
MUTATE_ARGS ?= --max-mutants 20 --seed 0 --jobs 2
mutate: env
	nice -n 2 $(PY) scripts/mutate.py $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) .numba_cache out
