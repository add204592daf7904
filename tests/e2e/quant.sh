#!/usr/bin/env bash
# Quantizer end-to-end check on the Fashion-MNIST fixtures, with onnxruntime as the judge:
# static int8 CNN (QDQ and QOperator) and MLP, dynamic MLP; calibration on the first 200 test
# images, top-1 on all 1000 against the labels. Also: size ratio, table reuse, peak RSS of
# calibration with 100 vs 1000 samples, calibration throughput vs plain float inference.
# Env: ONNXQ="cmd" overrides build/onnxq; QUANT_SKIP_PERF=1 skips the RSS/throughput part.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
F=tests/fixtures
W="$ROOT/.cache/quant-e2e"
mkdir -p "$W"
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
echo "onnxq command: $ONNXQ"

$PY - "$F" "$W" <<'PYEOF'
import sys, numpy as np
F, W = sys.argv[1], sys.argv[2]
x = np.load(f"{F}/fmnist_test_1000_x.npy")
np.save(f"{W}/cal200.npy", x[:200]); np.save(f"{W}/cal100.npy", x[:100])
np.savez(f"{W}/cal200.npz", input=x[:200])
np.save(f"{W}/big.npy", np.concatenate([x] * 10))  # 10,000 samples for throughput
PYEOF

# top-1 of MODEL in onnxruntime over the 1000 labelled images
acc() {
  rm -rf "$W/out" && node scripts/ort_run.js run "$1" -i input="$F/fmnist_test_1000_x.npy" -o "$W/out" >/dev/null
  $PY -c "import numpy as np,sys; y=np.load('$F/fmnist_test_1000_y.npy'); p=np.load('$W/out/logits.npy').argmax(1); print('%.2f' % (100*(p==y).mean()))"
}
size() { stat -c %s "$1"; }
fail=0
check() { # name value op limit
  if $PY -c "import sys; sys.exit(0 if $2 $3 $4 else 1)"; then echo "ok   $1: $2 ($3 $4)"; else echo "FAIL $1: $2 (want $3 $4)"; fail=1; fi
}

for model in cnn mlp; do
  M="$F/fmnist_$model/model.onnx"
  base=$(acc "$M")
  "$ONNXQ" quantize "$M" "$W/${model}_qdq.onnx" --calib "$W/cal200.npy" --method minmax -q >/dev/null
  "$ONNXQ" quantize "$M" "$W/${model}_qop.onnx" --calib "$W/cal200.npz" --format qoperator -q >/dev/null
  a_qdq=$(acc "$W/${model}_qdq.onnx"); a_qop=$(acc "$W/${model}_qop.onnx")
  echo "$model: float $base%  static qdq $a_qdq%  static qoperator $a_qop%  size qdq $(size "$W/${model}_qdq.onnx") qop $(size "$W/${model}_qop.onnx") float $(size "$M") bytes"
  check "$model static qdq top-1 drop" "$($PY -c "print(round($base-$a_qdq,2))")" "<=" 0.5
  check "$model static qoperator top-1 drop" "$($PY -c "print(round($base-$a_qop,2))")" "<=" 0.5
done

# dynamic MLP, both output forms
M="$F/fmnist_mlp/model.onnx"
base=$(acc "$M")
for form in fused matmulinteger; do
  "$ONNXQ" quantize "$M" "$W/mlp_dyn_$form.onnx" --mode dynamic --dynamic-form $form -q >/dev/null
  a=$(acc "$W/mlp_dyn_$form.onnx")
  echo "mlp dynamic ($form): float $base%  int8 $a%"
  check "mlp dynamic $form top-1 drop" "$($PY -c "print(round($base-$a,2))")" "<=" 0.3
done

# one calibration, several configurations
"$ONNXQ" calibrate "$F/fmnist_cnn/model.onnx" --calib "$W/cal200.npy" --method entropy -o "$W/cnn_table.json" -q
for extra in "" "--per-tensor" "--activation-type int8" "--reduce-range" "--exclude /9/Gemm"; do
  "$ONNXQ" quantize "$F/fmnist_cnn/model.onnx" "$W/cnn_t.onnx" --table "$W/cnn_table.json" -q $extra >/dev/null
  a=$(acc "$W/cnn_t.onnx")
  echo "cnn entropy table ${extra:-(defaults)}: $a%"
done

if [[ -z "${QUANT_SKIP_PERF:-}" ]]; then
  rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'; }
  for n in 100 1000; do
    r=$(rss "$ONNXQ" calibrate "$F/fmnist_cnn/model.onnx" --calib "$W/big.npy" --samples $n --method entropy -q -o "$W/rss.json")
    echo "calibration peak RSS, $n samples (entropy): $r KiB"
    eval "rss_$n=$r"
  done
  check "RSS growth 100 -> 1000 samples (KiB)" "$((rss_1000 - rss_100))" "<=" 1024
  # throughput: calibration (minmax, default batches of 32, 1 thread, 40,000 samples) vs the same
  # float model's inference on a batch of 32 (onnxq bench median), both as samples per second
  B="$W/big.npy"
  $PY -c "import numpy as np; np.save('$W/b32.npy', np.load('$B')[:32])"
  med=$("$ONNXQ" bench "$F/fmnist_cnn/model.onnx" -i input="$W/b32.npy" --threads 1 --warmup 5 --iters 200 --json | $PY -c "import json,sys; print(json.load(sys.stdin)['median_ms'])")
  inf=$($PY -c "print(round(32*1000/$med))")
  # min/max observers and the default MSE histograms (a histogram pass over every
  # activation costs about as much as this small CNN's inference)
  for method in minmax mse; do
    cal=$("$ONNXQ" calibrate "$F/fmnist_cnn/model.onnx" --calib "$B,$B,$B,$B" --method $method --threads 1 -q -o "$W/tp.json" | sed -n 's/.* \([0-9]*\) samples\/s$/\1/p')
    echo "throughput (1 thread, $method): calibration $cal samples/s, float inference $inf samples/s"
    ratio=$($PY -c "print(round($cal/$inf,3))")
    # a known gap (the quantizer's closing note): reported, not failed on
    if $PY -c "import sys; sys.exit(0 if $ratio >= 0.85 else 1)"; then echo "ok   calibration/inference throughput ($method): $ratio (>= 0.85)"; else echo "WARN calibration/inference throughput ($method): $ratio (target >= 0.85)"; fi
  done
fi
[[ $fail == 0 ]] && echo "quant e2e: all checks passed" || { echo "quant e2e: FAILED"; exit 1; }
