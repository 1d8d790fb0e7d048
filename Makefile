VENV ?= .venv
PY := $(VENV)/bin/python
NCLB := $(VENV)/bin/nclb
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,cluster]'
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

# Throughput by batch size, sampler overhead, NFE per decoder -> results/bench.md (BENCH_ARGS:
# e.g. --threads 1, --device cuda, --task sudoku9; see scripts/bench.py --help).
bench: install
	$(PY) scripts/bench.py $(BENCH_ARGS)

# Paper tables and figures (nclb table; grids in configs/grids/, outputs in results/).
# MODEL=tiny (default, CPU) | llada | dream (GPU). TABLE_ARGS passes extra key=value to nclb table.
MODEL ?= tiny
PAPER_TARGETS := table1 figure3 table2 table3 table4 table6 figure4
.PHONY: $(PAPER_TARGETS) tables

$(PAPER_TARGETS): install
	$(NCLB) table $@ model=$(MODEL) $(TABLE_ARGS)

# Everything a fresh clone can make (table4 needs the fine-tuned checkpoints of docs/posterior.md).
tables: table1 figure3 table2 table6 table3 figure4

clean:
	rm -rf $(VENV) outputs
