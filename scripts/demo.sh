#!/usr/bin/env bash
# The README's main job on the bundled Fashion-MNIST CNN (tests/fixtures/fmnist_cnn, trained by
# scripts/fixtures_fmnist.py): describe it, quantize it statically (calibration on 200 labelled
# test images), then prove the result — agreement and output difference (compare), top-1/top-5
# before and after (eval, 1000 images), latency and memory (bench), the per-layer ranking (debug) —
# and render everything into one HTML page.
# usage: scripts/demo.sh [ONNXQ] [OUT_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ONNXQ="${1:-$ROOT/build/onnxq}"
OUT="${2:-$ROOT/build/demo}"
F="$ROOT/tests/fixtures/fmnist_cnn/model.onnx"
X="$ROOT/tests/fixtures/fmnist_test_1000_x.npy"
Y="$ROOT/tests/fixtures/fmnist_test_1000_y.npy"
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "the float model"
"$ONNXQ" info "$F"
step "static int8 quantization, calibrated on the first 200 test images"
"$ONNXQ" quantize "$F" "$OUT/model_int8.onnx" --calib "$X" --samples 200
step "float vs int8 on 1000 labelled test images"
"$ONNXQ" compare "$F" "$OUT/model_int8.onnx" --data "$X" --labels "$Y" --threads 1 --label "static int8" \
    --report "$OUT/compare.json" --quiet
step "accuracy side by side"
"$ONNXQ" eval "$F" "$OUT/model_int8.onnx" --data "$X" --labels "$Y" --report "$OUT/eval.json" --quiet
step "latency at batch 32, one thread"
"$ONNXQ" bench "$F" "$OUT/model_int8.onnx" --random --batch 32 --threads 1 --iters 50 --report "$OUT/bench.json"
step "which layer loses what"
"$ONNXQ" debug "$F" "$OUT/model_int8.onnx" --data "$X" --samples 64 --report "$OUT/debug.json" --quiet
step "report"
"$ONNXQ" report "$OUT/compare.json" "$OUT/eval.json" "$OUT/bench.json" "$OUT/debug.json" \
    -o "$OUT/report.html" --title "onnxq demo: Fashion-MNIST CNN, float vs static int8"
echo "open $OUT/report.html"
