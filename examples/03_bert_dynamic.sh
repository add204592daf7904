#!/usr/bin/env bash
# Seed experiment 3: dynamic quantization of a BERT-style encoder's Linear layers only (4 layers, hidden 768, seq 128,
# random weights, exported from PyTorch): size before/after, latency, and the same top answer — the argmax over the
# sequence of the start and end logits, as a question-answering head reads them — on a fixed input.
source "$(dirname "$0")/common.sh"
need_models bert_encoder
F="$M/bert_encoder.onnx" IN="$M/bert_encoder.torch_in.npy"
"$ONNXQ" quantize "$F" "$W/dynamic.onnx" --mode dynamic --ops MatMul,Gemm >"$W/quantize.log"
"$ONNXQ" run "$F" -i "$IN" -o "$W/float" --threads "$THREADS" >/dev/null
"$ONNXQ" run "$W/dynamic.onnx" -i "$IN" -o "$W/dynamic" --threads "$THREADS" >/dev/null
"$ONNXQ" compare "$F" "$W/dynamic.onnx" --data "$IN" --threads "$THREADS" --report "$W/compare.json" -q >/dev/null
"$ONNXQ" bench "$F" "$W/dynamic.onnx" -i "$M/bert_encoder.torch_in.npy" --threads "$THREADS" --iters 20 --report "$W/bench.json" >/dev/null 2>&1 ||
  "$ONNXQ" bench "$F" "$W/dynamic.onnx" --random --threads "$THREADS" --iters 20 --report "$W/bench.json" >/dev/null
echo "BERT-style encoder, dynamic int8 on MatMul/Gemm only, $THREADS thread(s)"
grep -E "nodes:|weights:" "$W/quantize.log" | sed 's/^/  /'
printf '%-8s %9s %10s %10s\n' model size_MB ms speedup
printf '%-8s %9.1f %10.2f %10s\n' float "$(jget "$W/bench.json" "r['models'][0]['bytes']/1e6")" "$(jget "$W/bench.json" "r['models'][0]['latency_ms']['median']")" 1.00x
printf '%-8s %9.1f %10.2f %9.2fx\n' dynamic "$(jget "$W/bench.json" "r['models'][1]['bytes']/1e6")" "$(jget "$W/bench.json" "r['models'][1]['latency_ms']['median']")" "$(jget "$W/bench.json" "r['models'][1]['ratio_to_first']")"
$PY - "$W" <<'PY'
import sys, numpy as np, json
W = sys.argv[1]
a, b = np.load(f"{W}/float/logits.npy"), np.load(f"{W}/dynamic/logits.npy")
for s in range(a.shape[0]):
    fa = (int(a[s, :, 0].argmax()), int(a[s, :, 1].argmax())); fb = (int(b[s, :, 0].argmax()), int(b[s, :, 1].argmax()))
    print(f"sample {s}: answer span float {fa}, int8 {fb}: {'same' if fa == fb else 'DIFFERENT'}")
r = json.load(open(f"{W}/compare.json"))["outputs"][0]
print(f"logits: SQNR {r['sqnr_db']:.1f} dB, mean |diff| {r['mean_abs_diff']:.4f}")
PY
