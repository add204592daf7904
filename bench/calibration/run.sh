#!/usr/bin/env bash
# Calibration throughput against plain float inference on the same data, one thread: the Fashion-MNIST CNN
# (batch 32, 8 and 16 channels: a light network per activation value) and torchvision ResNet18 (random weights,
# batch 1). Steady state: calibration on N and on 4N samples, the difference divided into 3N samples, so the fixed
# cost (preparation, session, weight packing) is left out; inference: `onnxq bench`, the best of three medians,
# on a batch of the same data. Ratio = calibration samples/s / inference samples/s (issue target: >= 0.85).
# Rows `calibrate`: `onnxq calibrate`, a table for every configuration (a Conv's output before its Relu too);
# rows `quantize`: the calibration `onnxq quantize --calib` runs for its own configuration (default recipe, bias
# correction off so that only calibration differs between N and 4N; wall time of the whole command).
# Env: ONNXQ="cmd" overrides build/onnxq.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
W="$ROOT/.cache/bench-calibration"
mkdir -p "$W"
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
$PY scripts/export_torch.py resnet18 >/dev/null
$PY - "$W" <<'PYEOF'
import sys, numpy as np
W = sys.argv[1]
x = np.load("tests/fixtures/fmnist_test_1000_x.npy")
np.save(f"{W}/cnn.npy", np.concatenate([x] * 10))        # 10,000 images
np.save(f"{W}/cnn_b32.npy", x[:32])
r = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
np.save(f"{W}/r18.npy", r)
np.save(f"{W}/r18_b1.npy", r[:1])
PYEOF
secs() { # tool model data method
  if [[ $1 == calibrate ]]; then
    "$ONNXQ" calibrate "$2" --calib "$3" --method "$4" --threads 1 -q -o "$W/t.json" |
      sed -n 's/.* in \([0-9.]*\) s, .*/\1/p'
  else
    $PY -c "import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(time.perf_counter() - t)" "$ONNXQ" quantize "$2" "$W/q.onnx" --calib "$3" --method "$4" --threads 1 \
      --no-bias-correction -q
  fi
}
printf '%-11s %-10s %-7s %12s %12s %7s\n' model tool method calib_smp/s infer_smp/s ratio
run() { # name model data(N samples) N batch_file batch
  local name=$1 model=$2 data=$3 n=$4 bf=$5 b=$6 med inf
  # the fastest of three medians (a shared machine only ever slows a run down)
  med=$(for r in 1 2 3; do "$ONNXQ" bench "$model" -i input="$bf" --threads 1 --warmup 3 --iters 60 --json; done |
        $PY -c "import json,sys; print(min(json.loads(l)['median_ms'] for l in sys.stdin if l.strip()))")
  inf=$($PY -c "print($b*1000/$med)")
  for tool in calibrate quantize; do
    for m in minmax mse; do
      # the fastest of three runs each, as for inference (a shared machine only ever slows a run down)
      t1=$(for r in 1 2 3; do secs $tool "$model" "$data" $m; done | sort -g | head -1)
      t4=$(for r in 1 2 3; do secs $tool "$model" "$data,$data,$data,$data" $m; done | sort -g | head -1)
      $PY -c "c=3*$n/($t4-$t1); print('%-11s %-10s %-7s %12.1f %12.1f %7.2f' % ('$name', '$tool', '$m', c, $inf, c/$inf))"
    done
  done
}
run fmnist_cnn tests/fixtures/fmnist_cnn/model.onnx "$W/cnn.npy" 10000 "$W/cnn_b32.npy" 32
run resnet18 .cache/models/resnet18.onnx "$W/r18.npy" 32 "$W/r18_b1.npy" 1
