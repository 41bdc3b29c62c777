PY ?= python3
OUT ?= runs/demo

.PHONY: install demo test test-slow bench

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. The package builds with the setuptools
# installed here (pyproject's build requirement) instead of one pip fetches into a fresh build env each time.
install:
	$(PY) -m pip install -q torch==2.13.0 'setuptools>=61'
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'

demo: install
	oakdpo quickstart -o $(OUT)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/verify.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/memory.py
