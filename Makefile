# `make demo`: set up .venv and run every method on the offline demo benchmark.
# `make test`: set up .venv and run the linters, build the docs site strictly and run the test suite (the slow tests, real Ray
# clusters and wheel builds, follow in `make test-slow`, which CI runs after `make test`).
VENV ?= .venv
PYTHON ?= python3
# PyPI's torch/torchvision pair. Their CUDA builds run on the CPU as well; a CPU-only torch wheel
# from a pip find-links folder must not be mixed with PyPI's torchvision (its C++ ops fail to load),
# so this one install ignores local pip configuration.
TORCH_PINS := torch==2.13.0 torchvision==0.28.0

.PHONY: demo test test-slow install

$(VENV)/.torch-installed:
	$(PYTHON) -m venv $(VENV)
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip install $(TORCH_PINS)
	touch $@

install: $(VENV)/.torch-installed
	$(VENV)/bin/pip install -e ".[test]"

demo: install
	$(VENV)/bin/laicbench run

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/pytest -q -m "not slow"

test-slow: install
	$(VENV)/bin/pytest -q -m slow
