# The two entry points of the README: `make demo` and `make test`, both from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test venv results clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(VENV)/bin/enlarge upscale examples/coffee.png --scale 2.5 -o out/coffee_x2.5.png --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

results: $(STAMP)
	$(PY) scripts/assemble_results.py

clean:
	rm -rf $(VENV) out
