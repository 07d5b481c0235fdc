# Airlock: `make demo` runs the whole offline pipeline on the embedded default model; `make test` runs the tests.
# Both set everything up first (idempotent: a second run is a no-op in seconds).

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
# torch goes in first, alone, so nothing else pulls a multi-GB CUDA build. On a host without a local CPU wheel,
# point pip at the CPU index: make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
SYSTEM_TOOLS   := tmux minisign unshare go
# Two test processes, a test file each (the tests wait on subprocesses, imports and tmux a good part of the time):
# the suite takes about three quarters of the time of one process on 2 cores. PYTEST_ARGS= runs it in one. Files
# start in the order tests/conftest.py gives (the longest first), not xdist's (the most tests first).
PYTEST_ARGS    ?= -n 2 --dist loadfile --no-loadscope-reorder
# Wheels set-up obtains are kept in .airlock/wheels, where appliance bundles (make demo) take them from: torch's CPU
# build, and llama-cpp-python, which has no wheel on the registry and is built once from its sdist: portable
# (-DGGML_NATIVE=OFF: AVX2/FMA/F16C, any x86-64 CPU since 2013; a native build crashed on an AVX-512/AMX CPU here)
# and without OpenSSL (the appliance never downloads) or the multimodal library mtmd (never loaded; a third of
# the build).
SETUP_WHEELS     := .airlock/wheels
# olah, the self-hosted Hugging Face hub mirror sites run, in a venv of its own (its fastapi-utils pins psutil<6;
# the stack pins 7): the hub tests serve tiny model repos through it to the real huggingface_hub client.
HUB_MIRROR       := .airlock/hub-mirror
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAVA_BUILD=OFF

.PHONY: setup system-tools test demo bench cuda-bundle clean help

help:
	@echo "make demo   - set up, then run the offline pipeline end to end on the embedded default model"
	@echo "make test   - set up, then run the test suite"
	@echo "make setup  - create .venv, install the pinned stack, fetch the embedded model and llama.cpp's converter"
	@echo "make bench  - benchmarks against the peers (slow; not part of make test)"
	@echo "make cuda-bundle - the CUDA 13 appliance bundle (llama.cpp built for CUDA here: 4-5 hours on 2 cores, once)"

setup: $(VENV)/.installed system-tools
	@$(BIN)/airlock setup

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Airlock needs Python 3.11 (make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip download --quiet --no-deps $(TORCH_PIP_ARGS) "$(TORCH_SPEC)" -d $(SETUP_WHEELS)
	$(BIN)/pip install --quiet $(SETUP_WHEELS)/torch-*.whl
	ls $(SETUP_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { echo "building llama-cpp-python (several minutes, once) ..."; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip wheel --quiet --no-deps \
	  --no-cache-dir -c constraints.txt llama-cpp-python -w $(SETUP_WHEELS); }
	$(BIN)/pip install --quiet -c constraints.txt $(SETUP_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,bundle]"
	$(BIN)/pip check
	touch $@

# Debian packages the tests and the demo use: tmux (TUI end-to-end test), minisign (independent signature check),
# unshare from util-linux (a real air gap), go from golang-go (Go's text/template, the engine Ollama renders a
# Modelfile's TEMPLATE with, judges the Modelfiles exports write). Installed only when missing and when we may.
system-tools:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system tools:$$missing"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux minisign util-linux golang-go >/dev/null; \
	  else echo "note: missing$$missing (apt-get install tmux minisign util-linux golang-go); tests that need them will skip"; fi; \
	fi

$(HUB_MIRROR)/.installed: tests/hub-mirror-requirements.txt
	test -x $(HUB_MIRROR)/bin/python || $(PYTHON) -m venv $(HUB_MIRROR)
	$(HUB_MIRROR)/bin/pip install --quiet -r tests/hub-mirror-requirements.txt
	touch $@

test: setup $(HUB_MIRROR)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/airlock demo

bench: setup
	$(BIN)/python -m bench

# The appliance for CUDA 13 GPU hosts from the package registry alone (not part of make test: the CUDA build of
# llama.cpp is about 9 CPU-hours for sm_80 + sm_90, 4-5 hours on 2 cores, once; later bundles reuse it).
# CUDA_BUNDLE_OUT overrides where it goes. CUDA_BUNDLE_ARGS passes more, e.g. a llama.cpp wheel built elsewhere
# (or make setup's CPU one, for llama.cpp on the CPU and training on the GPU):
#   make cuda-bundle CUDA_BUNDLE_ARGS="--set tools.llama_cpp_wheel_file=/path/to/llama_cpp_python-....whl"
CUDA_BUNDLE_OUT  ?= .airlock/bundles/airlock-cuda13
CUDA_BUNDLE_ARGS ?=
cuda-bundle: setup
	test -f .airlock/keys/airlock.key || $(BIN)/airlock keys generate
	$(BIN)/airlock bundle create bundler/examples/appliance-cuda13.yaml --out $(CUDA_BUNDLE_OUT) $(CUDA_BUNDLE_ARGS)

clean:
	rm -rf $(VENV) .airlock .pytest_cache
