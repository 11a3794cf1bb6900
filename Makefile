# Hydra: build, run and test. `make serve` and `make test` are the README's Quick start.
SWIFT ?= swift
VENV := .venv
# Debian's python3-torch, -numpy, -opencv stay visible inside the venv (--system-site-packages).
PYTHON := $(VENV)/bin/python
HYDRA := .build/release/hydra
THREADS ?= $(shell nproc)

.PHONY: setup build demo serve test lint-web readme-picture test-swift test-reference test-service bench memory png overhead operations protocol loadtest soak fuzz container container-smoke test-asan test-tsan train train-smoke calibrate precision clean

setup: $(VENV)/.installed

$(VENV)/.installed: scripts/setup.sh Tests/requirements.txt
	@bash scripts/setup.sh
	@[ -x $(VENV)/bin/python ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/requirements.txt
	@touch $@

build: setup
	$(SWIFT) build -c release --product hydra
	@git describe --always --dirty --abbrev=12 > .build/release/hydra-build.txt 2>/dev/null || true

# Runs the built-in default model on the example frame.
demo: build
	$(HYDRA) predict --outputs segmentation,depth,pointcloud,overlay,summary --depth-format colour --out out/demo examples/scene.jpg
	@ls -l out/demo

# The README's picture: examples/scene.jpg, its segmentation overlay and colour depth -> docs/images/result.jpg.
readme-picture: build
	$(HYDRA) predict --outputs segmentation,depth,overlay,summary --depth-format colour --out out/readme examples/scene.jpg
	/usr/bin/python3 scripts/readme_picture.py out/readme

# Runs the service on the built-in default model (or HYDRA_MODELS=name=path,...) on port 8080.
serve: build
	$(HYDRA) serve

test: build train-smoke lint-web
	$(SWIFT) test
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference Tests/Service Tests/Deploy
	FUZZ_SECONDS=$(CI_FUZZ_SECONDS) SWIFT=$(SWIFT) bash scripts/fuzz.sh

# The web page's files (Sources/HydraServer/Resources/web): ESLint, HTML Tidy and a CSS parse.
# NODE_PATH: Debian's eslint lives in /usr/share/nodejs, which a node from elsewhere does not search.
WEB := Sources/HydraServer/Resources/web
lint-web: setup
	NODE_PATH=/usr/share/nodejs eslint --no-eslintrc -c Tests/Lint/eslintrc.json --max-warnings 0 $(WEB)/app.js
	tidy -q -e $(WEB)/index.html
	/usr/bin/python3 Tests/Lint/check_css.py $(WEB)/app.css

test-service: build
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Service

test-swift: setup
	$(SWIFT) test

test-reference: build
	HYDRA=$(HYDRA) $(PYTHON) -m pytest -q -p no:cacheprovider Tests/Reference

# Hydra vs ONNX Runtime, OpenVINO and PyTorch on the same weights -> benchmarks/RESULTS.md.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: benchmarks/requirements.txt
	@[ -x $(BENCH_VENV)/bin/python ] || /usr/bin/python3 -m venv --system-site-packages $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	@touch $@

bench: build $(BENCH_VENV)/.installed
	$(HYDRA) bench --size 1226x370 --threads $(THREADS) --runs 30 --postprocess
	$(BENCH_VENV)/bin/python benchmarks/compare.py --hydra $(HYDRA)
	$(PYTHON) benchmarks/memory.py --hydra $(HYDRA)

# What each replica / worker adds to RSS, and time to ready -> benchmarks/MEMORY.md (also part of `make bench`).
memory: build
	$(PYTHON) benchmarks/memory.py --hydra $(HYDRA)

# PNG encode time and size per output, zlib level x row filters -> benchmarks/PNG.md.
png: build
	$(PYTHON) benchmarks/png.py --hydra $(HYDRA)

# The service's own cost: POST latency against the same work in-process -> benchmarks/OVERHEAD.md.
overhead: build
	$(PYTHON) benchmarks/overhead.py --hydra $(HYDRA)

# An operator's session, recorded: /metrics and logs after mixed traffic, a SIGHUP reload under traffic,
# a missing model folder -> benchmarks/OPERATIONS.md.
operations: build
	$(PYTHON) benchmarks/operations.py --hydra $(HYDRA)

# /v2 infer (binary tensors, JSON data, tritonclient) against /v1 predict for one frame -> benchmarks/PROTOCOL.md.
protocol: build
	$(PYTHON) benchmarks/protocol.py --hydra $(HYDRA)

# The running service under 1x, 2x and 4x its saturation rate (hey) -> benchmarks/LOADTEST.md.
loadtest: build
	@command -v hey >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey)
	$(PYTHON) benchmarks/loadtest.py --hydra $(HYDRA)

# About 80 % of saturation for SOAK_MINUTES; RSS and fd slopes must stay flat.
SOAK_MINUTES ?= 20
soak: build
	@command -v hey >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey)
	$(PYTHON) benchmarks/soak.py --minutes $(SOAK_MINUTES) --hydra $(HYDRA)

# The OCI image with podman from local images only (scripts/container.sh), and a run of it as
# Kubernetes would run it: ready, a frame, SIGTERM with a request in flight (scripts/container_smoke.py).
IMAGE ?= localhost/hydra:dev
container:
	IMAGE=$(IMAGE) bash scripts/container.sh

container-smoke:
	/usr/bin/python3 scripts/container_smoke.py --image $(IMAGE)

# libFuzzer + AddressSanitizer on each untrusted-input path for FUZZ_SECONDS (scripts/fuzz.sh);
# `make test` runs each target for CI_FUZZ_SECONDS.
FUZZ_SECONDS ?= 300
CI_FUZZ_SECONDS ?= 15
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) SWIFT=$(SWIFT) bash scripts/fuzz.sh

# The Swift test suite under AddressSanitizer / ThreadSanitizer (separate build folders).
# LeakSanitizer is off: at exit it reports XCTest's own test-registration objects (26 KB, nothing from
# Sources/), and a suppression matching XCTest would hide every leak reached from a test. Leaks are
# checked by the RSS tests (500 requests) and `make soak` instead.
test-asan: setup
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --sanitize=address --scratch-path .build-asan

test-tsan: setup
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# Generated street scenes and training (CPU): see training/README.md.
TRAIN_DATA ?= out/scenes
TRAIN_FRAMES ?= 2400
TRAIN_MINUTES ?= 60
train: build
	/usr/bin/python3 training/scenes.py --out $(TRAIN_DATA)/train --count $(TRAIN_FRAMES) --start 100000 --width 621 --height 188
	/usr/bin/python3 training/train.py --data $(TRAIN_DATA)/train --minutes $(TRAIN_MINUTES) --out out/model.ckpt --log training/logs/train.log
	/usr/bin/python3 training/calibrate_depth.py out/model.ckpt out/model-fullres.ckpt --train-width 621 --target-width 1242
	$(HYDRA) convert out/model-fullres.ckpt Sources/HydraEngine/Resources/default.safetensors --preset kitti \
		--description "trained by the project on its own generated street scenes (training/), depth head calibrated to full-resolution KITTI"

# Accuracy of each precision (Hydra's and its peers') on real frames and 500 held-out generated scenes -> benchmarks/PRECISION.md.
HELDOUT ?= out/heldout
precision: build $(BENCH_VENV)/.installed
	test -f $(HELDOUT)/scene_800499.png || /usr/bin/python3 training/scenes.py --out $(HELDOUT) --count 500 --start 800000 --width 1242 --height 375
	$(BENCH_VENV)/bin/python benchmarks/precision.py --hydra $(HYDRA) --scenes $(HELDOUT) --count 500

# int8 calibration of the built-in model: 12 generated full-size scenes (seeds apart from training's
# and from the held-out evaluation's), written beside the weights (see docs/PRECISION.md).
CALIB_DATA ?= out/calib
calibrate: build
	/usr/bin/python3 training/scenes.py --out $(CALIB_DATA) --count 12 --start 700000 --width 1242 --height 375
	$(HYDRA) calibrate --images $(CALIB_DATA) --calibration-out Sources/HydraEngine/Resources/default.int8.json \
		--report benchmarks/int8-sensitivity.json

# A tiny generate + train run, so the scripts stay working (part of `make test`).
train-smoke:
	rm -rf out/smoke && /usr/bin/python3 training/scenes.py --out out/smoke --count 2 --width 160 --height 64
	/usr/bin/python3 training/train.py --data out/smoke --out out/smoke/model.ckpt --log out/smoke/train.log --max-steps 2 --batch 2 --crop 96x48
	$(HYDRA) convert out/smoke/model.ckpt out/smoke/model.safetensors --preset kitti

clean:
	rm -rf .build out $(VENV)
