#!/usr/bin/env bash
# End-to-end check of dynamic quantization: `onnxq quantize --mode dynamic` (MatMul/Gemm -> DynamicQuantizeMatMul,
# Conv -> DynamicQuantizeLinear/ConvInteger chains, LSTM -> DynamicQuantizeLSTM) on exported and real models; the
# int8 file runs in onnxruntime 1.30 and in onnxq on the same input. Per output, onnxq's int8 result must equal
# onnxruntime's on the same file (rel = max|a-b| / max|b| <= 1e-3), or, where float differences in the last bit
# upstream (LayerNorm, Gelu) move a dynamically quantized activation by a step and the steps compound through the
# layers (the BERT-style encoder: 144 dB at the first MatMul's input, 38 dB after four layers), be at least as close
# to onnxruntime's int8 result as that is to onnxruntime's float result (sqnr_vs_ort >= ort's own int8 SQNR).
# Also reports the SQNR of onnxq's int8 output against the float model's. Env: ONNXQ="cmd" overrides build/onnxq;
# DYN_MODELS="a b".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
W="$ROOT/.cache/e2e-dynamic"
scripts/install-deps.sh --e2e
scripts/fetch-models.sh >/dev/null
$PY scripts/export_torch.py resnet18 mobilenet_v2 bert_encoder lstm >/dev/null
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi

# name | float model | options for `ort_run.js inputs`
MODELS="
resnet18|$M/resnet18.onnx|
mobilenet_v2|$M/mobilenet_v2.onnx|
bert_encoder|$M/bert_encoder.onnx|
lstm|$M/lstm.onnx|
fmnist_cnn|tests/fixtures/fmnist_cnn/model.onnx|--shape input=8x1x28x28
fmnist_mlp|tests/fixtures/fmnist_mlp/model.onnx|--shape input=8x1x28x28
silero_vad|$M/silero_vad_legacy.onnx|--shape input=1x512 --fill sr=16000 --fill h=0 --fill c=0
hey_mycroft|$M/hey_mycroft_v0.1.onnx|
"
fail=0
printf '%-14s %-8s %11s %11s %11s %9s %9s  %s\n' model output rel_vs_ort sqnr_vs_ort ort_sqnr sqnr_db int8_ops status
while IFS='|' read -r name file opts; do
  [[ -n "$name" ]] || continue
  [[ -z "${DYN_MODELS:-}" || " $DYN_MODELS " == *" $name "* ]] || continue
  d="$W/$name"; rm -rf "$d"; mkdir -p "$d"
  if ! $ONNXQ quantize "$file" "$d/int8.onnx" --mode dynamic -q >"$d/quantize.log" 2>&1; then
    printf '%-14s %-8s %11s %11s %11s %9s %9s  %s\n' "$name" - - - - - - "FAIL(quantize; see $d/quantize.log)"
    fail=1; continue
  fi
  # shellcheck disable=SC2086  # opts and the printed -i args are meant to word-split
  args=$(node scripts/ort_run.js inputs "$file" -o "$d/in" --seed 42 $opts)
  # shellcheck disable=SC2086
  node scripts/ort_run.js run "$d/int8.onnx" $args -o "$d/ort" --threads 2 >/dev/null
  # shellcheck disable=SC2086
  node scripts/ort_run.js run "$file" $args -o "$d/ort_float" --threads 2 >/dev/null
  rc=0
  # shellcheck disable=SC2086
  { $ONNXQ run "$d/int8.onnx" $args -o "$d/onnxq" --threads 2 && $ONNXQ run "$file" $args -o "$d/float" --threads 2; } \
    >"$d/onnxq.log" 2>&1 || rc=$?
  if ((rc)); then
    printf '%-14s %-8s %11s %11s %11s %9s %9s  %s\n' "$name" - - - - - - "FAIL(onnxq exit $rc; see $d/onnxq.log)"
    fail=1; continue
  fi
  ops=$($ONNXQ info "$d/int8.onnx" | awk '/DynamicQuantize(MatMul|LSTM)|ConvInteger/ {s += $NF} END {print s + 0}')
  $PY - "$name" "$d" "$ops" <<'EOF' || fail=1
import glob, os, sys
import numpy as np
name, d, ops = sys.argv[1:]
ok = True
for f in sorted(glob.glob(os.path.join(d, "ort", "*.npy"))):
    o = os.path.basename(f)[:-4]
    b = np.load(f).astype(np.float64)
    a = np.load(os.path.join(d, "onnxq", o + ".npy")).astype(np.float64)
    fl = np.load(os.path.join(d, "float", o + ".npy")).astype(np.float64)
    ofl = np.load(os.path.join(d, "ort_float", o + ".npy")).astype(np.float64)
    scale = float(np.max(np.abs(b))) or 1.0
    rel = float(np.max(np.abs(a - b))) / scale if a.size else 0.0

    def sqnr(x, ref):
        err = float(np.sum((x - ref) ** 2))
        return 10 * np.log10(float(np.sum(ref ** 2)) / err) if err > 0 else float("inf")

    vs_ort, ort_own = sqnr(a, b), sqnr(b, ofl)
    good = a.shape == b.shape and (rel <= 1e-3 or vs_ort >= ort_own) and int(ops) > 0
    ok &= good
    print(f"{name:<14} {o[:8]:<8} {rel:11.2e} {vs_ort:11.1f} {ort_own:11.1f} {sqnr(a, fl):9.1f} {ops:>9}  "
          f"{'ok' if good else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF
done <<<"$MODELS"
exit $fail
