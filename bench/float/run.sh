#!/usr/bin/env bash
# Float latency benchmark: onnxq vs onnxruntime on the same model files and inputs (batch 1, 1 and 2 threads),
# alternating runs (onnxq, ort, onnxq, ort); prints the best median of each and the ratio onnxq/ort.
# Env: ONNXQ="cmd" overrides build/onnxq; BENCH_MODELS="resnet18 ..."; BENCH_ITERS (20); BENCH_WARMUP (3); BENCH_ROUNDS (2).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
W="$ROOT/.cache/bench-float"
ITERS="${BENCH_ITERS:-20}" WARMUP="${BENCH_WARMUP:-3}" ROUNDS="${BENCH_ROUNDS:-2}"
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

scripts/install-deps.sh --e2e
scripts/fetch-models.sh >/dev/null
$PY scripts/export_torch.py resnet18 mobilenet_v2 bert_encoder >/dev/null
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi

# name | model file | options for `ort_run.js inputs` (same as tests/e2e/run.sh)
MODELS="
resnet18|resnet18.onnx|
mobilenet_v2|mobilenet_v2.onnx|
bert_encoder|bert_encoder.onnx|
ocr_cls|ch_ppocr_mobile_v2.0_cls_infer.onnx|--shape x=1x3x48x192
ocr_rec|ch_PP-OCRv4_rec_infer.onnx|--shape x=1x3x48x320
blazeface|face_detection_front_128x128_barracuda.onnx|
melspectrogram|melspectrogram.onnx|--shape input=1x1280
oww_embedding|embedding_model.onnx|--shape input_1=1x76x32x1
hey_mycroft|hey_mycroft_v0.1.onnx|
silero_vad|silero_vad_legacy.onnx|--shape input=1x512 --fill sr=16000 --fill h=0 --fill c=0
"
median() { # extract median_ms from the JSON object printed by a bench command
  $PY -c 'import json,sys; s=sys.stdin.read(); print(json.loads(s[s.index("{"):s.rindex("}")+1])["median_ms"])' 2>/dev/null
}

printf '%-16s %7s %12s %12s %8s\n' model threads onnxq_ms ort_ms ratio
while IFS='|' read -r name file opts; do
  [[ -n "$name" ]] || continue
  [[ -z "${BENCH_MODELS:-}" || " $BENCH_MODELS " == *" $name "* ]] || continue
  # shellcheck disable=SC2086  # opts and the printed -i args are meant to word-split
  args=$(node scripts/ort_run.js inputs "$M/$file" -o "$W/$name" --seed 1 $opts)
  for t in 1 2; do
    q=() o=()
    for ((r = 0; r < ROUNDS; r++)); do
      # shellcheck disable=SC2086
      q+=("$($ONNXQ bench "$M/$file" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" --json | median || echo nan)")
      # shellcheck disable=SC2086
      o+=("$(node scripts/ort_run.js bench "$M/$file" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" | median)")
    done
    $PY - "$name" "$t" "${q[*]}" "${o[*]}" <<'PYEOF'
import sys
name, t, q, o = sys.argv[1], sys.argv[2], min(map(float, sys.argv[3].split())), min(map(float, sys.argv[4].split()))
print(f"{name:<16} {t:>7} {q:12.3f} {o:12.3f} {q / o:8.2f}")
PYEOF
  done
done <<<"$MODELS"
