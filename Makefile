# Hydra: build, run and test. `make demo` and `make test` are the README's Quick start.
SWIFT ?= swift
VENV := .venv
# Debian's python3-torch, -numpy, -opencv stay visible inside the venv (--system-site-packages).
PYTHON := $(VENV)/bin/python
HYDRA := .build/release/hydra
THREADS ?= $(shell nproc)

.PHONY: setup build demo serve test test-swift test-reference test-service bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: scripts/setup.sh Tests/requirements.txt
	@bash scripts/setup.sh
	@[ -x $(VENV)/bin/python ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/requirements.txt
	@touch $@

build: setup
	$(SWIFT) build -c release --product hydra

# Runs the built-in default model on the example frame.
demo: build
	$(HYDRA) predict --outputs segmentation,depth,pointcloud,overlay,summary --out out/demo examples/street.png
	@ls -l out/demo

# Runs the service on the built-in default model (or HYDRA_MODELS=name=path,...) on port 8080.
serve: build
	$(HYDRA) serve

test: build
	$(SWIFT) test
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference Tests/Service

test-service: build
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Service

test-swift: setup
	$(SWIFT) test

test-reference: build
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference

# Engine latency on a KITTI-sized frame (see `hydra bench --help`).
bench: build
	$(HYDRA) bench --size 1226x370 --threads $(THREADS) --runs 30 --postprocess

clean:
	rm -rf .build out $(VENV)
