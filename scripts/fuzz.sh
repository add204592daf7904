#!/usr/bin/env bash
# Builds the libFuzzer loader target (fuzz/fuzz_load.c) with clang, seeds a corpus
# from the ONNX backend node-test models and runs it.
# Usage: scripts/fuzz.sh [SECONDS]      explore for SECONDS (default 60), growing $BUILD/corpus
#        scripts/fuzz.sh --runs N       the smoke run of `make test`: N executions from the seed
#                                       corpus alone, fixed seed, one process: the same inputs on
#                                       every machine, so a red result is reproducible and a green
#                                       one means what it meant here (timed runs explore further,
#                                       and what they find is fixed and kept in fuzz/regressions)
# Env: FUZZ_BUILD_DIR, FUZZ_JOBS (explore only), FUZZ_SEED (default 1).
# Exits non-zero when the fuzzer finds a crash; reproducers land in $BUILD/artifacts/.
set -euo pipefail
MODE=time
DURATION=60
if [[ "${1:-}" == "--runs" ]]; then
  MODE=runs; RUNS="${2:?scripts/fuzz.sh --runs N}"
elif [[ -n "${1:-}" ]]; then
  DURATION="$1"
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${FUZZ_JOBS:-1}"
NODE_TESTS=/usr/include/onnx/backend/test/data/node

command -v clang >/dev/null || { echo "fuzz.sh: clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

CC=clang cmake -S "$ROOT" -B "$BUILD" -DONNXQ_FUZZ=ON -DONNXQ_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_load

# The seed corpus: ~300 conformance models under max_len, spread evenly over all
# operators, plus the small fixtures; rebuilt every time so it never drifts.
SEEDS="$BUILD/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$BUILD/artifacts"
if [[ -d "$NODE_TESTS" ]]; then
  find "$NODE_TESTS" -name model.onnx -size -65537c | LC_ALL=C sort > "$BUILD/corpus_candidates.txt"
  total=$(wc -l < "$BUILD/corpus_candidates.txt")
  step=$(( (total + 299) / 300 )); (( step > 0 )) || step=1
  awk -v s="$step" 'NR % s == 0' "$BUILD/corpus_candidates.txt" | while read -r path; do
    cp "$path" "$SEEDS/$(basename "$(dirname "$path")").onnx"
  done
fi
for f in "$ROOT"/tests/fixtures/*/model.onnx; do
  [[ -f "$f" && $(stat -c %s "$f") -le 65536 ]] && cp "$f" "$SEEDS/fixture_$(basename "$(dirname "$f")").onnx"
done

# LeakSanitizer stays on: a leak on an error path is a bug too.
ARGS=(-rss_limit_mb=2048 -max_len=65536 -timeout=10
      -artifact_prefix="$BUILD/artifacts/" -print_final_stats=1 -seed="${FUZZ_SEED:-1}")
cd "$BUILD"
if [[ "$MODE" == runs ]]; then
  CORPUS="$BUILD/corpus-smoke"
  rm -rf "$CORPUS"; mkdir -p "$CORPUS"
  echo "fuzz.sh: $RUNS runs from $(ls "$SEEDS" | wc -l) seed files, seed ${FUZZ_SEED:-1}" >&2
  # Same inputs on every run: -reload=0 (the corpus is re-read on a timer otherwise),
  # and no address randomization (compared pointers feed the mutator's dictionary).
  NORAND=(); setarch "$(uname -m)" -R true 2>/dev/null && NORAND=(setarch "$(uname -m)" -R)
  # and the same kernels: AVX512-VNNI at most (an AMX machine and one without run the
  # same code; a CPU below it runs what it has)
  export ONNXQ_ISA="${ONNXQ_ISA:-avx512vnni}"
  exec "${NORAND[@]}" "$BUILD/fuzz/fuzz_load" "${ARGS[@]}" -runs="$RUNS" -reload=0 "$CORPUS" "$SEEDS"
fi
CORPUS="$BUILD/corpus"
mkdir -p "$CORPUS"
ARGS+=(-max_total_time="$DURATION")
if (( JOBS > 1 )); then
  ARGS+=(-jobs="$JOBS" -workers="$JOBS")
fi
exec "$BUILD/fuzz/fuzz_load" "${ARGS[@]}" "$CORPUS" "$SEEDS"
