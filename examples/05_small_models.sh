#!/usr/bin/env bash
# Seed experiment 5: the small models — the trained Fashion-MNIST MLP quantized dynamically, the trained CNN
# statically (accuracy on 1000 labelled test images), and an LSTM classifier (random weights) dynamically
# (agreement with float on random inputs) — each with its speed-up at batch 32.
source "$(dirname "$0")/common.sh"
need_models lstm
X=tests/fixtures/fmnist_test_1000_x.npy Y=tests/fixtures/fmnist_test_1000_y.npy
MLP=tests/fixtures/fmnist_mlp/model.onnx CNN=tests/fixtures/fmnist_cnn/model.onnx LSTM="$M/lstm.onnx"
"$ONNXQ" quantize "$MLP" "$W/mlp_dynamic.onnx" --mode dynamic -q >/dev/null
"$ONNXQ" quantize "$CNN" "$W/cnn_static.onnx" --calib "$X" --samples 200 -q >/dev/null
"$ONNXQ" quantize "$LSTM" "$W/lstm_dynamic.onnx" --mode dynamic >"$W/lstm.log"
"$ONNXQ" eval "$MLP" "$W/mlp_dynamic.onnx" "$CNN" "$W/cnn_static.onnx" --data "$X" --labels "$Y" --report "$W/eval.json" -q >/dev/null
"$ONNXQ" compare "$LSTM" "$W/lstm_dynamic.onnx" --random 500 --threads "$THREADS" --report "$W/lstm.json" -q >/dev/null
"$ONNXQ" bench "$MLP" "$W/mlp_dynamic.onnx" --random --batch 32 --threads "$THREADS" --report "$W/bench_mlp.json" >/dev/null
"$ONNXQ" bench "$CNN" "$W/cnn_static.onnx" --random --batch 32 --threads "$THREADS" --report "$W/bench_cnn.json" >/dev/null
"$ONNXQ" bench "$LSTM" "$W/lstm_dynamic.onnx" --random --batch 32 --threads "$THREADS" --report "$W/bench_lstm.json" >/dev/null
echo "batch 32, $THREADS thread(s)"
printf '%-14s %-8s %12s %12s %10s %9s\n' model mode float_top1 int8_top1 size speedup
for k in 0 2; do
  n=$([[ $k == 0 ]] && echo mlp || echo cnn); mode=$([[ $k == 0 ]] && echo dynamic || echo static)
  printf '%-14s %-8s %11.2f%% %11.2f%% %10.3f %8.2fx\n' "fmnist_$n" $mode "$(jget "$W/eval.json" "100*r['models'][$k]['top1']")" \
    "$(jget "$W/eval.json" "100*r['models'][$((k + 1))]['top1']")" \
    "$(jget "$W/eval.json" "r['models'][$((k + 1))]['bytes']/r['models'][$k]['bytes']")" \
    "$(jget "$W/bench_$n.json" "r['models'][1]['ratio_to_first']")"
done
printf '%-14s %-8s %25s %10.3f %8.2fx\n' lstm dynamic "agreement $(jget "$W/lstm.json" "f\"{100*(1-r['outputs'][0]['argmax_disagreement']):.1f}%\"")" \
  "$(jget "$W/lstm.json" "r['size_ratio']")" "$(jget "$W/bench_lstm.json" "r['models'][1]['ratio_to_first']")"
grep -E "nodes:|kept float" "$W/lstm.log" | sed 's/^/  lstm: /'
