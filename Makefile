# Thin wrapper over CMake. `make demo` and `make test` are the README's two
# commands: each installs what it needs (apt-get, npm), builds and runs.
JOBS ?= 2
BUILD ?= build
FUZZ_SECONDS ?= 60
# The fuzz smoke run of `make test`: a fixed number of executions (about 2.5 minutes
# here), fixed seed, fresh corpus, so every machine runs the same inputs.
FUZZ_RUNS ?= 1500000
# The same for fuzz/fuzz_data.c (npy/npz, JSON tables and rules, images, image spec,
# rescaled records): about a minute here too.
FUZZ_DATA_RUNS ?= 450000

.PHONY: all deps build demo test test-release test-sanitize fuzz fuzz-smoke e2e bench clean

all: build

deps:
	scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

demo: deps build
	scripts/demo.sh $(BUILD)/onnxq $(BUILD)/demo

test: deps
	$(MAKE) test-release
	$(MAKE) test-sanitize
	$(MAKE) fuzz-smoke

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DONNXQ_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -L 'unit|robustness|conformance'

# Exploration: runs for FUZZ_SECONDS and keeps what it finds in build-fuzz/corpus
# (FUZZ_TARGET=fuzz_data: the data target, in build-fuzz/corpus-data).
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-smoke:
	scripts/fuzz.sh --target fuzz_load --runs $(FUZZ_RUNS)
	scripts/fuzz.sh --target fuzz_data --runs $(FUZZ_DATA_RUNS)

e2e:
	tests/e2e/run.sh

bench:
	bench/float/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
