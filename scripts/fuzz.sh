#!/usr/bin/env bash
# Builds a libFuzzer target with clang, seeds its corpus and runs it:
#   fuzz_load (fuzz/fuzz_load.c, the default): model bytes -> load -> session -> run, seeded
#             from the ONNX backend node-test models and the small fixtures;
#   fuzz_data (fuzz/fuzz_data.c): the quantizer's other inputs (.npy/.npz data through the
#             reader, calibration tables, rules files, PNG/JPEG, image spec, rescaled
#             records), seeded by scripts/fuzz_data_seeds.py.
# Usage: scripts/fuzz.sh [--target T] [SECONDS]   explore for SECONDS (default 60), growing
#                                                 $BUILD/corpus (fuzz_load) or $BUILD/corpus-T
#        scripts/fuzz.sh [--target T] --runs N    the smoke run of `make test`: N executions from the seed
#                                       corpus alone, fixed seed, one process: the same inputs on
#                                       every machine, so a red result is reproducible and a green
#                                       one means what it meant here (timed runs explore further,
#                                       and what they find is fixed and kept in fuzz/regressions,
#                                       fuzz_data's in fuzz/regressions/data)
# Env: FUZZ_TARGET (instead of --target), FUZZ_BUILD_DIR, FUZZ_JOBS (explore only), FUZZ_SEED (default 1).
# Exits non-zero when the fuzzer finds a crash; reproducers land in $BUILD/artifacts/
# (fuzz_data's named data-crash-*).
set -euo pipefail
MODE=time
DURATION=60
TARGET="${FUZZ_TARGET:-fuzz_load}"
while (( $# )); do
  case "$1" in
    --target) TARGET="${2:?scripts/fuzz.sh --target fuzz_load|fuzz_data}"; shift 2 ;;
    --runs) MODE=runs; RUNS="${2:?scripts/fuzz.sh --runs N}"; shift 2 ;;
    *) DURATION="$1"; shift ;;
  esac
done
case "$TARGET" in
  fuzz_load|fuzz_data) ;;
  *) echo "fuzz.sh: unknown target '$TARGET' (fuzz_load or fuzz_data)" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${FUZZ_JOBS:-1}"
NODE_TESTS=/usr/include/onnx/backend/test/data/node

command -v clang >/dev/null || { echo "fuzz.sh: clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

CC=clang cmake -S "$ROOT" -B "$BUILD" -DONNXQ_FUZZ=ON -DONNXQ_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "$TARGET"

# The seed corpus, rebuilt every time so it never drifts.
SEEDS="$BUILD/seeds"
SUFFIX=""
PREFIX=""
if [[ "$TARGET" == fuzz_data ]]; then
  SEEDS="$BUILD/seeds-data"; SUFFIX="-data"; PREFIX="data-"
fi
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$BUILD/artifacts"
if [[ "$TARGET" == fuzz_data ]]; then
  # valid files of every kind fuzz_data parses, behind the byte that picks the parser
  /usr/bin/python3 "$ROOT/scripts/fuzz_data_seeds.py" "$SEEDS"
else
  # ~300 conformance models under max_len, spread evenly over all operators, plus the small fixtures
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
fi

# LeakSanitizer stays on: a leak on an error path is a bug too.
ARGS=(-rss_limit_mb=2048 -max_len=65536 -timeout=10
      -artifact_prefix="$BUILD/artifacts/$PREFIX" -print_final_stats=1 -seed="${FUZZ_SEED:-1}")
[[ -f "$ROOT/fuzz/$TARGET.dict" ]] && ARGS+=(-dict="$ROOT/fuzz/$TARGET.dict")
cd "$BUILD"
if [[ "$MODE" == runs ]]; then
  CORPUS="$BUILD/corpus-smoke$SUFFIX"
  rm -rf "$CORPUS"; mkdir -p "$CORPUS"
  echo "fuzz.sh: $RUNS runs from $(ls "$SEEDS" | wc -l) seed files, seed ${FUZZ_SEED:-1}" >&2
  # Same inputs on every run: -reload=0 (the corpus is re-read on a timer otherwise),
  # and no address randomization (compared pointers feed the mutator's dictionary).
  NORAND=(); setarch "$(uname -m)" -R true 2>/dev/null && NORAND=(setarch "$(uname -m)" -R)
  # and the same kernels: AVX512-VNNI at most (an AMX machine and one without run the
  # same code; a CPU below it runs what it has)
  export ONNXQ_ISA="${ONNXQ_ISA:-avx512vnni}"
  exec "${NORAND[@]}" "$BUILD/fuzz/$TARGET" "${ARGS[@]}" -runs="$RUNS" -reload=0 "$CORPUS" "$SEEDS"
fi
CORPUS="$BUILD/corpus$SUFFIX"
mkdir -p "$CORPUS"
ARGS+=(-max_total_time="$DURATION")
if (( JOBS > 1 )); then
  ARGS+=(-jobs="$JOBS" -workers="$JOBS")
fi
exec "$BUILD/fuzz/$TARGET" "${ARGS[@]}" "$CORPUS" "$SEEDS"
