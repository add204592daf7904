#!/usr/bin/env bash
# Seed experiment 2: static post-training quantization of the trained Fashion-MNIST CNN (conv-BN-relu x2, linear;
# tests/fixtures/fmnist_cnn) with BatchNorm folded into the convolutions: top-1/top-5 on 1000 labelled test images
# before and after, size, a save/load round trip gives the same accuracy, and int8 emulated in float (--emulate)
# is close to the integer kernels; onnxq debug ranks the layers by SQNR.
source "$(dirname "$0")/common.sh"
F=tests/fixtures/fmnist_cnn/model.onnx X=tests/fixtures/fmnist_test_1000_x.npy Y=tests/fixtures/fmnist_test_1000_y.npy
"$ONNXQ" quantize "$F" "$W/int8.onnx" --calib "$X" --samples 200 >"$W/quantize.log"
"$ONNXQ" convert "$W/int8.onnx" "$W/int8_roundtrip.onnx" >/dev/null
"$ONNXQ" eval "$F" "$W/int8.onnx" "$W/int8_roundtrip.onnx" --data "$X" --labels "$Y" --threads "$THREADS" \
    --report "$W/eval.json" -q >/dev/null
# integer kernels vs emulation of the same file
"$ONNXQ" compare "$W/int8.onnx" "$W/int8.onnx" --emulate --data "$X" --threads "$THREADS" --report "$W/emulate.json" -q >/dev/null
"$ONNXQ" compare "$F" "$W/int8.onnx" --data "$X" --labels "$Y" --threads "$THREADS" --report "$W/compare.json" -q >/dev/null
"$ONNXQ" bench "$F" "$W/int8.onnx" --random --batch 32 --threads "$THREADS" --report "$W/bench.json" >/dev/null
# per-layer: SQNR of every quantized tensor against float, and the error each layer adds on its own
"$ONNXQ" debug "$F" "$W/int8.onnx" --data "$X" --samples 200 --threads "$THREADS" --report "$W/debug.json" -q >"$W/debug.txt"
"$ONNXQ" report "$W/compare.json" "$W/eval.json" "$W/bench.json" "$W/debug.json" -o "$W/report.html" --title "Fashion-MNIST CNN, static int8" >/dev/null
echo "Fashion-MNIST CNN, static int8 (calibration: 200 test images; evaluation: 1000), $THREADS thread(s)"
grep -E "folded|nodes:" "$W/quantize.log" | sed 's/^/  /'
printf '%-22s %8s %8s %10s %12s\n' model top1 top5 size_KB batch32_ms
for i in 0 1 2; do
  name=$(echo "float int8 int8_after_save_load" | cut -d' ' -f$((i + 1)))
  ms=$([[ $i -lt 2 ]] && jget "$W/bench.json" "f\"{r['models'][$i]['latency_ms']['median']:.3f}\"" || echo -)
  printf '%-22s %7.2f%% %7.2f%% %10.1f %12s\n' "$name" "$(jget "$W/eval.json" "100*r['models'][$i]['top1']")" \
    "$(jget "$W/eval.json" "100*r['models'][$i]['top5']")" "$(jget "$W/eval.json" "r['models'][$i]['bytes']/1024")" "$ms"
done
echo "int8 vs float: top-1 disagreement $(jget "$W/compare.json" "f\"{100*r['outputs'][0]['argmax_disagreement']:.2f}%\""), SQNR $(jget "$W/compare.json" "f\"{r['outputs'][0]['sqnr_db']:.1f}\"") dB"
echo "integer kernels vs --emulate (same file): max |diff| $(jget "$W/emulate.json" "f\"{r['outputs'][0]['max_abs_diff']:.4f}\""), top-1 disagreement $(jget "$W/emulate.json" "f\"{100*r['outputs'][0]['argmax_disagreement']:.2f}%\"")"
echo "per layer (onnxq debug, 200 samples), worst first:"
sed -n '/^rank/,$p' "$W/debug.txt" | sed 's/^/  /'
echo "report: $W/report.html"
