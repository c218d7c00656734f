# civicmote front door. `make demo` and `make test` install everything they need themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   := tools/mpy-node
SETUP_STAMP := $(VENV)/.civicmote-installed
PORT_STAMP  := $(PORT)/node_modules/.civicmote-installed

.PHONY: help setup test test-cluster test-micropython demo bench system-deps clean firmware firmware-unix firmware-deps

help:
	@echo "make demo     simulated devices -> local Mosquitto -> city verifier (installs what it needs)"
	@echo "make test     the whole test suite, CPython and the real MicroPython port"
	@echo "make bench    benchmarks, each printing its ratio against an anchor measured in the same run"
	@echo "make setup    only install: .venv with pinned packages, the MicroPython port, Mosquitto, OpenSSH,"
	@echo "              Chromium, PostgreSQL and RabbitMQ"
	@echo "make firmware the agent frozen into MicroPython built from source (MICROPYTHON_SRC: a tarball or"
	@echo "              folder; default ../shared/vendor/micropython-1.28.0-src.tar.xz): unix 64/32-bit, Pico W"
	@echo "make clean    remove .venv, node_modules and build output"

setup: $(SETUP_STAMP) $(PORT_STAMP) system-deps

$(SETUP_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

$(PORT_STAMP): $(PORT)/package.json $(PORT)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || tools/install-system-deps nodejs
	cd $(PORT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Mosquitto (the city broker in tests and the demo), OpenSSH (the ssh provisioning test),
# Chromium with its driver (the web page's browser tests), PostgreSQL and RabbitMQ (the
# scaled-out city: tests start their own servers on free ports).
system-deps:
	@tools/install-system-deps mosquitto
	@tools/install-system-deps sshd
	@tools/install-system-deps chromium
	@tools/install-system-deps postgresql
	@tools/install-system-deps rabbitmq

# Test modules run in parallel (pytest-xdist): each module is one unit on one worker, with its
# own servers on free ports and its own temp dirs (tests/conftest.py hands out the longest first).
# TEST_JOBS=1 runs them one after another as before.
TEST_JOBS ?= 3
test: setup firmware-unix
	$(BIN)/python -m pytest $(if $(filter 1,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

# Firmware from a MicroPython source tree (tools/firmware.py; README "Firmware"). Cached in
# build/firmware/: with nothing changed a second run takes seconds. The unix images are built
# first, so they land even if the Pico W's cross build fails. -j2 at most (FIRMWARE_JOBS).
MICROPYTHON_SRC ?=
FIRMWARE := $(BIN)/python tools/firmware.py $(if $(MICROPYTHON_SRC),--src $(MICROPYTHON_SRC))

firmware-deps:
	@tools/install-system-deps firmware-unix
	@tools/install-system-deps firmware-unix32
	@tools/install-system-deps firmware-rp2

firmware: $(SETUP_STAMP) firmware-deps
	$(FIRMWARE)

# What `make test` needs: the two unix images (the tests run the frozen agent on them).
firmware-unix: $(SETUP_STAMP)
	@tools/install-system-deps firmware-unix
	@tools/install-system-deps firmware-unix32
	$(FIRMWARE) unix64 unix32

# Only the 3-node RabbitMQ cluster's tests (also part of `make test`) and its bench's own quick run.
test-cluster: setup
	$(BIN)/python -m pytest tests/test_cluster_rabbitmq.py
	$(BIN)/python bench/bench_cluster.py --quick

test-micropython: setup
	$(BIN)/python tests/mpy_port.py

# The demo needs only the venv and a broker: Mosquitto if it can be had, else its embedded one.
demo: $(SETUP_STAMP)
	@tools/install-system-deps mosquitto || echo "civicmote: no Mosquitto; the demo will use its embedded broker" >&2
	$(BIN)/python tools/demo.py

# Every bench also has `--quick` (a few seconds, same code paths, last line JSON): make test runs
# them all that way (tests/test_bench_quick.py), so none can rot. See bench/README.md.
bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(PORT)/node_modules build *.egg-info demo-out
