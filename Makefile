# Two commands on a fresh machine: `make demo` (the whole product on built-in sample data)
# and `make test` (the test suite). Both create .venv and install everything they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,onnx,bag,dev,ros,fleet,openvino
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_output
COLCON_DIR ?= /tmp/cityseg-colcon

.PHONY: install demo test test-fast lint bench bench-postprocess colcon-check smoke-node clean

install: $(STAMP)

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# --force replaces an earlier demo's output only (a directory without the demo's marker is refused).
demo: $(STAMP)
	$(VENV)/bin/cityseg demo --out $(DEMO_OUT) --force

test: $(STAMP)
	$(PY) -m pytest --runslow

test-fast: $(STAMP)
	$(PY) -m pytest

# ruff (settings and the reasons for each ignored rule: ruff.toml), then the import contracts
# (.importlinter: the pipeline's layers, nothing of the converter on the runtime path).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Per-stage frame latency of every model and backend vs the study's approach (~8 min, ~17 GB
# peak for the study's U-Net at 512x1024); refreshes the table in docs/PERFORMANCE.md.
bench: $(STAMP)
	$(VENV)/bin/cityseg bench --repeats 6 --warmup 2 --update-doc docs/PERFORMANCE.md

bench-postprocess: $(STAMP)
	$(PY) benchmarks/postprocess.py --update-doc docs/PERFORMANCE.md

# Build the package the way a ROS 2 workspace does and check what lands in the install tree.
colcon-check: $(STAMP)
	rm -rf $(COLCON_DIR)
	$(VENV)/bin/colcon --log-base $(COLCON_DIR)/log build --base-paths . \
		--build-base $(COLCON_DIR)/build --install-base $(COLCON_DIR)/install
	$(PY) tests/tools/check_colcon_install.py $(COLCON_DIR)/install

# The installed node with the installed params file, as README starts it, must reach active.
smoke-node: colcon-check
	$(PY) tests/tools/smoke_node.py $(COLCON_DIR)/install

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info $(COLCON_DIR)
