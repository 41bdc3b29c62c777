PY ?= python3
OUT ?= runs/demo

.PHONY: install demo test test-slow test-compat bench

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. The package builds with the setuptools
# installed here (pyproject's build requirement) instead of one pip fetches into a fresh build env each time.
install:
	$(PY) -m pip install -q torch==2.13.0 'setuptools>=61'
	$(PY) -m pip install -q --no-build-isolation -c constraints.txt -e '.[test]'

demo: install
	oakdpo quickstart -o $(OUT)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# The fast suite again on the oldest releases the package allows, the vllm extra's pins (pyproject.toml), in a venv
# that sees everything else installed here.
COMPAT = transformers==5.20.2 z3-solver==4.15.4.0 numpy==2.3.5
test-compat: install
	$(PY) -m venv --system-site-packages .venv-compat
	.venv-compat/bin/python -m pip install -q --no-deps $(COMPAT)
	.venv-compat/bin/python -m pytest -q

bench: install
	$(PY) benchmarks/verify.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/memory.py
