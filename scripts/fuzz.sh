#!/usr/bin/env bash
# Builds the libFuzzer loader target (fuzz/fuzz_load.c) with clang, seeds a corpus
# from the ONNX backend node-test models and runs it.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60; env FUZZ_BUILD_DIR, FUZZ_JOBS)
# Exits non-zero when the fuzzer finds a crash; reproducers land in $BUILD/artifacts/.
set -euo pipefail
DURATION="${1:-60}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
JOBS="${FUZZ_JOBS:-1}"
NODE_TESTS=/usr/include/onnx/backend/test/data/node

command -v clang >/dev/null || { echo "fuzz.sh: clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

CC=clang cmake -S "$ROOT" -B "$BUILD" -DONNXQ_FUZZ=ON -DONNXQ_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_load

CORPUS="$BUILD/corpus"
mkdir -p "$CORPUS" "$BUILD/artifacts"
if [[ -z "$(ls -A "$CORPUS" 2>/dev/null)" ]]; then
  # ~300 conformance models under max_len, spread evenly over all operators, plus the small fixtures
  if [[ -d "$NODE_TESTS" ]]; then
    find "$NODE_TESTS" -name model.onnx -size -65537c | sort > "$BUILD/corpus_candidates.txt"
    total=$(wc -l < "$BUILD/corpus_candidates.txt")
    step=$(( (total + 299) / 300 )); (( step > 0 )) || step=1
    awk -v s="$step" 'NR % s == 0' "$BUILD/corpus_candidates.txt" | while read -r path; do
      cp "$path" "$CORPUS/$(basename "$(dirname "$path")").onnx"
    done
  fi
  for f in "$ROOT"/tests/fixtures/*/model.onnx; do
    [[ -f "$f" && $(stat -c %s "$f") -le 65536 ]] && cp "$f" "$CORPUS/fixture_$(basename "$(dirname "$f")").onnx"
  done
  echo "fuzz.sh: seeded $(ls "$CORPUS" | wc -l) corpus files" >&2
fi

# LeakSanitizer stays on: a leak on an error path is a bug too.
ARGS=(-max_total_time="$DURATION" -rss_limit_mb=2048 -max_len=65536 -timeout=10
      -artifact_prefix="$BUILD/artifacts/" -print_final_stats=1 -seed="${FUZZ_SEED:-1}")
if (( JOBS > 1 )); then
  ARGS+=(-jobs="$JOBS" -workers="$JOBS")
fi
cd "$BUILD"
exec "$BUILD/fuzz/fuzz_load" "${ARGS[@]}" "$CORPUS"
