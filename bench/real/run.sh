#!/usr/bin/env bash
# The real pretrained models (PaddleOCR classifier and recognizer, BlazeFace, openWakeWord's embedding and
# hey_mycroft head, Silero VAD), float and int8, through onnxq and onnxruntime 1.30 (npm onnxruntime-node): the same
# files, batch 1, 1 and 2 threads, interleaved rounds, the best median of each. int8 files: those
# tests/e2e/quant_real.sh makes (static QDQ, calibrated on real inputs; it runs first when they are missing); inputs:
# the first sample of each model's calibration data. Ratios are onnxq / onnxruntime: below 1, onnxq is faster.
# Env: ONNXQ="cmd" overrides build/onnxq; REAL_MODELS="ocr_cls ..."; BENCH_ITERS (50); BENCH_WARMUP (5);
# BENCH_ROUNDS (3).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
Q="$ROOT/.cache/quant-real"
W="$ROOT/.cache/bench-real"
ITERS="${BENCH_ITERS:-50}" WARMUP="${BENCH_WARMUP:-5}" ROUNDS="${BENCH_ROUNDS:-3}"
MODELS="${REAL_MODELS:-ocr_cls ocr_rec blazeface oww_embedding hey_mycroft silero_vad}"
mkdir -p "$W"
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
for name in $MODELS; do
  [[ -f "$Q/${name}_int8.onnx" ]] || { ONNXQ="$ONNXQ" tests/e2e/quant_real.sh >/dev/null; break; }
done
float_file() {
  case $1 in
    ocr_cls) echo "$M/ch_ppocr_mobile_v2.0_cls_infer.onnx" ;;
    ocr_rec) echo "$M/ch_PP-OCRv4_rec_infer.onnx" ;;
    blazeface) echo "$M/face_detection_front_128x128_barracuda.onnx" ;;
    oww_embedding) echo "$M/embedding_model.onnx" ;;
    hey_mycroft) echo "$M/hey_mycroft_v0.1.onnx" ;;
    silero_vad) echo "$M/silero_vad_legacy.onnx" ;;
    *) echo "bench/real: unknown model '$1'" >&2; exit 2 ;;
  esac
}
# -i arguments: the first calibration sample of each input, one .npy per input name
inputs() {
  $PY - "$Q" "$W/in_$1" "$1" "$(float_file "$1")" <<'PYEOF'
import os, sys
import numpy as np
import onnx
Q, d, name, f = sys.argv[1:5]
os.makedirs(d, exist_ok=True)
cal = {"ocr_cls": "ocr_cls_cal.npy", "ocr_rec": "ocr_rec_cal.npy", "blazeface": "blazeface_cal.npy",
       "oww_embedding": "emb_cal.npy", "hey_mycroft": "hm_cal.npy", "silero_vad": "vad_cal.npz"}[name]
data = np.load(os.path.join(Q, cal))
g = onnx.load(f, load_external_data=False).graph
inits = {t.name for t in g.initializer}
args = []
for i in g.input:
    if i.name in inits:
        continue
    a = data[i.name] if cal.endswith(".npz") else data
    if name == "silero_vad" and i.name in ("h", "c"):
        x = a[0]                       # (2, 1, 64): the state of one stream
    elif a.ndim and len(i.type.tensor_type.shape.dim) == a.ndim:
        x = a[:1]                      # batch 1
    else:
        x = a[0]                       # a scalar input (Silero's sample rate)
    p = os.path.join(d, "%d.npy" % len(args))
    np.save(p, np.asarray(x))
    args.append("-i %s=%s" % (i.name, p))
print(" ".join(args))
PYEOF
}
median() { $PY -c 'import json,sys; s=sys.stdin.read(); print(json.loads(s[s.index("{"):s.rindex("}")+1])["median_ms"])' 2>/dev/null; }

printf '%-14s %-5s %7s %10s %10s %10s\n' model prec threads onnxq_ms ort_ms onnxq/ort
for name in $MODELS; do
  args=$(inputs "$name")
  for prec in float int8; do
    if [[ $prec == float ]]; then f=$(float_file "$name"); else f="$Q/${name}_int8.onnx"; fi
    for t in 1 2; do
      q=() o=()
      for ((r = 0; r < ROUNDS; r++)); do
        # shellcheck disable=SC2086
        q+=("$($ONNXQ bench "$f" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" --json | median || echo nan)")
        # shellcheck disable=SC2086
        o+=("$(node scripts/ort_run.js bench "$f" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" | median || echo nan)")
      done
      $PY - "$name" "$prec" "$t" "${q[*]}" "${o[*]}" <<'PYEOF'
import math, sys
name, prec, t = sys.argv[1:4]
q, o = (min(map(float, a.split())) for a in sys.argv[4:6])
r = f"{q / o:.2f}" if math.isfinite(q) and math.isfinite(o) and o > 0 else "-"
print(f"{name:<14} {prec:<5} {t:>7} {q:10.3f} {o:10.3f} {r:>10}")
PYEOF
    done
  done
done
