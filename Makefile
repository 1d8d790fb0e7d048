VENV ?= .venv
PY := $(VENV)/bin/python
NCLB := $(VENV)/bin/nclb
STAMP := $(VENV)/.installed

# transformers: nclb supports >=4.46,<5. The suite runs on the oldest release tested
# (TRANSFORMERS_LOW, in .venv) and the tests that load models through transformers also on the
# newest 4.x (make test-newest, in .venv-newest).
TRANSFORMERS_LOW ?= 4.49.0
NEWEST_VENV ?= .venv-newest
NEWEST_STAMP := $(NEWEST_VENV)/.installed
NEWEST_TESTS := tests/test_hf_adapters.py tests/test_kv_forwards.py tests/test_tiny_model.py \
  tests/test_lmeval.py tests/test_show.py tests/test_requirements.py

.PHONY: install demo test test-newest lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,cluster,lmeval]' 'transformers==$(TRANSFORMERS_LOW)'
	touch $(STAMP)

$(NEWEST_STAMP): pyproject.toml
	python3 -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(NEWEST_VENV)/bin/python -m pip install -q torch==2.13.0
	$(NEWEST_VENV)/bin/python -m pip install -q -e '.[test,lmeval]' 'transformers>=4.57,<5'
	touch $(NEWEST_STAMP)

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest

# The model-adapter, stand-in, KV-forward, tiny-model and lm-eval tests under the newest
# transformers 4.x (a second venv; about 2 minutes of tests on 2 cores, after the install).
test-newest: $(NEWEST_STAMP)
	$(NEWEST_VENV)/bin/python -c 'import transformers as t; print("transformers", t.__version__)'
	$(NEWEST_VENV)/bin/python -m pytest $(NEWEST_TESTS)

lint: install
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

# Throughput by batch size, sampler overhead, NFE per decoder, the key/value cache rows ->
# results/bench.md (BENCH_ARGS: e.g. --threads 1, --device cuda, --task sudoku9, --cache '';
# see scripts/bench.py --help). On LLaDA-8B shapes, on a GPU: scripts/bench_gpu.py.
bench: install
	$(PY) scripts/bench.py $(BENCH_ARGS)

# Paper tables and figures (nclb table; grids in configs/grids/, outputs in results/).
# MODEL=tiny (default, CPU) | llada | dream (GPU). TABLE_ARGS passes extra key=value to nclb table.
MODEL ?= tiny
# The grids with a target here (nclb.tables.make reads this line for the tables' provenance).
PAPER_TARGETS := table1 figure3 table2 table3 table4 table6 figure4 decoder_front
.PHONY: $(PAPER_TARGETS) tables

$(PAPER_TARGETS): install
	$(NCLB) table $@ model=$(MODEL) $(TABLE_ARGS)

# Table 4 on the tiny model first makes its fine-tuned checkpoints (posterior traces of the
# shipped base checkpoints/tiny-arith-t2, then three fine-tunes; about 20-30 minutes on 2 cores).
TABLE4_FT := outputs/table4/ft-both/hf/model.safetensors
table4: $(if $(filter tiny,$(MODEL)),$(TABLE4_FT))
$(TABLE4_FT): | install
	$(PY) scripts/table4.py

# The decoder fronts on the tiny model also sweep `verify`, which needs a model that judges the
# tokens it can see: tiny-chain trained on with corrupt=0.1 (about 25 minutes on one CPU core;
# not shipped). Without it the front is made without the verify rows (a note says so).
VERIFY_MODEL := outputs/verify/tiny-chain-verify/model.safetensors
.PHONY: verify_model
verify_model: $(VERIFY_MODEL)
$(VERIFY_MODEL): | install
	$(NCLB) train task=chain init=checkpoints/tiny-chain corrupt=0.1 optim.lr=3e-4 \
	  optim.steps=1185 optim.minutes=600 optim.batch_size=64 threads=1 eval_every=400 \
	  out_dir=outputs/train/chain-verify export_dir=outputs/verify/tiny-chain-verify export_dtype=fp16
decoder_front: $(if $(filter tiny,$(MODEL)),$(VERIFY_MODEL))

# Everything a fresh clone can make in minutes (table4 adds its fine-tunes: make table4).
tables: table1 figure3 table2 table6 table3 figure4

clean:
	rm -rf $(VENV) $(NEWEST_VENV) outputs

# The key/value cache table (results/cache.md + csv): every decoder of the table with cache
# none / prefix / dual on chain (n=500) and sudoku9, one thread, from logged runs in
# outputs/cache (decoded when missing; about 20-30 minutes on one core).
.PHONY: cache
cache: install
	$(PY) scripts/cache_table.py $(CACHE_ARGS)
