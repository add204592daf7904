#!/usr/bin/env bash
# Seed experiment 1: ResNet18 exported from PyTorch. Is onnxq's float run equivalent to PyTorch? Then dynamic and
# static quantization: argmax agreement with float over 1000 random inputs, size, latency float vs int8.
# (Random weights: agreement on random inputs is what the seed measures; accuracy needs trained models, see 02.)
source "$(dirname "$0")/common.sh"
need_models resnet18
F="$M/resnet18.onnx"
N="${N:-1000}"
"$ONNXQ" run "$F" -i "$M/resnet18.torch_in.npy" -o "$W/run" --threads "$THREADS" >/dev/null
eq=$($PY -c "import numpy as np; a=np.load('$W/run/output.npy'); b=np.load('$M/resnet18.torch_out.npy'); print(f'{np.abs(a-b).mean():.2e} (max {np.abs(a-b).max():.2e})')")
$PY -c "import numpy as np; np.save('$W/calib.npy', np.random.default_rng(0).standard_normal((32,3,224,224)).astype(np.float32))"
"$ONNXQ" quantize "$F" "$W/dynamic.onnx" --mode dynamic -q >/dev/null
"$ONNXQ" quantize "$F" "$W/static.onnx" --calib "$W/calib.npy" -q >/dev/null
for c in dynamic static; do
  "$ONNXQ" compare "$F" "$W/$c.onnx" --random "$N" --seed 7 --threads "$THREADS" --label "$c" --report "$W/compare_$c.json" -q >/dev/null
done
"$ONNXQ" bench "$F" "$W/dynamic.onnx" "$W/static.onnx" --random --threads "$THREADS" --iters 30 --report "$W/bench.json" >/dev/null
"$ONNXQ" report "$W"/compare_*.json "$W/bench.json" -o "$W/report.html" --title "ResNet18: float vs int8" >/dev/null
echo "ResNet18 (torchvision, random weights), batch 1, $THREADS thread(s); onnxq float vs PyTorch: mean |diff| $eq"
printf '%-9s %11s %10s %10s %12s %12s\n' model size_MB ratio ms speedup agreement
printf '%-9s %11.2f %10s %10.2f %12s %12s\n' float "$(jget "$W/bench.json" "r['models'][0]['bytes']/1e6")" 1.000 \
  "$(jget "$W/bench.json" "r['models'][0]['latency_ms']['median']")" 1.00x -
for i in 1 2; do
  c=$([[ $i == 1 ]] && echo dynamic || echo static)
  printf '%-9s %11.2f %10.3f %10.2f %11.2fx %11.1f%%\n' $c "$(jget "$W/bench.json" "r['models'][$i]['bytes']/1e6")" \
    "$(jget "$W/compare_$c.json" "r['size_ratio']")" "$(jget "$W/bench.json" "r['models'][$i]['latency_ms']['median']")" \
    "$(jget "$W/bench.json" "r['models'][$i]['ratio_to_first']")" "$(jget "$W/compare_$c.json" "100*(1-r['outputs'][0]['argmax_disagreement'])")"
done
echo "report: $W/report.html"
