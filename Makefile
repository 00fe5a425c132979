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

test: $(STAMP) browser-deps web-deps
	$(PY) -m pytest -q

results: $(STAMP)
	$(PY) scripts/assemble_results.py

clean:
	rm -rf $(VENV) out

# Chromium and its driver for tests/test_serve_browser.py (skipped without them, failed under CI=true).
.PHONY: browser-deps
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "chromium and chromedriver are installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "browser-deps: no apt-get here; install Chromium and chromedriver by hand" >&2; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && apt-get install -y chromium chromium-driver; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update && sudo apt-get install -y chromium chromium-driver; \
	else \
		echo "browser-deps: not root and no password-less sudo; run: sudo apt-get install chromium chromium-driver" >&2; \
	fi

# onnxruntime-web for `enlarge export --web` and tests/test_web_browser.py, exactly as web/package-lock.json pins it.
WEB_DEPS_STAMP := web/node_modules/.package-lock.json
.PHONY: web-deps
web-deps: $(WEB_DEPS_STAMP)

$(WEB_DEPS_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "web-deps: npm is missing; install Node.js (apt-get install npm)" >&2; exit 1; }
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	touch $(WEB_DEPS_STAMP)

# Ship the current best weights of lite (the annealed run) and lite-real: export, then the calibrations and the
# quality pin in each model card.
SHIPPED_RUNS := lite=runs/lite-anneal lite-real=runs/lite-real
.PHONY: weights
weights: $(STAMP)
	@for pair in $(SHIPPED_RUNS); do \
		name=$${pair%%=*}; run=$${pair#*=}; \
		$(VENV)/bin/enlarge export $$run --name $$name --which best && \
		$(VENV)/bin/enlarge calibrate --model $$name && \
		$(VENV)/bin/enlarge calibrate-adaptive --model $$name && \
		$(PY) scripts/record_card_evaluation.py --model $$name || exit 1; \
	done

# Wheels of what `enlarge train` needs and the lent GPU machine's image lacks (it has torch, numpy, pillow,
# safetensors, pyyaml, tqdm, tifffile), at this venv's versions, for its Python 3.12: scripts/train_on_gpu.sh
# installs them from .whl/ (carry .whl to that machine).
GPU_WHEELS := pydantic pydantic_core annotated-types typing-inspection typing_extensions pypng
.PHONY: gpu-wheels
gpu-wheels: $(STAMP)
	rm -rf .whl
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
		$$($(PY) -c "import importlib.metadata as m, sys; print(*(f'{n}=={m.version(n)}' for n in sys.argv[1:]))" $(GPU_WHEELS))
