# Hydra: build, run and test. `make demo` and `make test` are the README's Quick start.
SWIFT ?= swift
PYTHON ?= /usr/bin/python3
HYDRA := .build/release/hydra
THREADS ?= $(shell nproc)

.PHONY: setup build build-debug demo test test-swift test-reference bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product hydra

# Runs the built-in default model on the example frame.
demo: build
	$(HYDRA) predict --outputs segmentation,depth,pointcloud,overlay,summary --out out/demo examples/street.png
	@ls -l out/demo

test: build
	$(SWIFT) test
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference Tests/Service

test-swift: setup
	$(SWIFT) test

test-reference: build
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference

# Engine latency on a KITTI-sized frame (see `hydra bench --help`).
bench: build
	$(HYDRA) bench --size 1226x370 --threads $(THREADS) --runs 30 --postprocess

clean:
	rm -rf .build out
