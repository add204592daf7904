#!/usr/bin/env bash
# Peers side by side: the same ONNX files through onnxq and onnxruntime 1.30 (npm onnxruntime-node), and the same
# architectures through PyTorch 1.13 (float, and its own int8: static prepare/convert or quantize_dynamic on Linear,
# onednn engine), batch 1 (batch 32 for the Fashion-MNIST models), 1 and 2 threads, interleaved rounds; the best
# median of each. int8 files: `onnxq quantize` (static QDQ, 32 random calibration inputs, for the conv nets and the
# CNN; dynamic for the BERT-style encoder and the MLP; rows "qop": ResNet18/MobileNetV2's static file in QOperator form;
# rows "dyn": ResNet18/MobileNetV2 quantized dynamically, Conv as onnxruntime's ConvInteger chains). Ratios are onnxq /
# peer: below 1, onnxq is faster.
# Env: ONNXQ="cmd" overrides build/onnxq; PEER_MODELS="resnet18 ..."; TORCH_OMP_WAIT (PASSIVE); BENCH_ITERS (20); BENCH_WARMUP (3); BENCH_ROUNDS (2).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
W="$ROOT/.cache/bench-peers"
ITERS="${BENCH_ITERS:-20}" WARMUP="${BENCH_WARMUP:-3}" ROUNDS="${BENCH_ROUNDS:-2}"
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MODELS="${PEER_MODELS:-resnet18 mobilenet_v2 bert_encoder fmnist_mlp fmnist_cnn}"
# libgomp's default spin-waiting makes torch's 2-thread runs 4-25x slower than 1 thread when other processes share
# the two cores; PASSIVE (sleep at barriers) is the fair setting on this shared machine
TORCH_OMP_WAIT="${TORCH_OMP_WAIT:-PASSIVE}"
mkdir -p "$W"

scripts/install-deps.sh --e2e
$PY scripts/export_torch.py resnet18 mobilenet_v2 bert_encoder >/dev/null
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
median() { $PY -c 'import json,sys; s=sys.stdin.read(); print(json.loads(s[s.index("{"):s.rindex("}")+1])["median_ms"])' 2>/dev/null; }

float_file() {
  case $1 in
    fmnist_mlp|fmnist_cnn) echo "$ROOT/tests/fixtures/${1}/model.onnx" ;;
    *) echo "$M/$1.onnx" ;;
  esac
}
# the dynamically quantized file (Conv -> ConvInteger chains, MatMul -> DynamicQuantizeMatMul) of a conv net
dyn_file() {
  local out="$W/$1_dyn.onnx"
  [[ -f "$out" ]] || "$ONNXQ" quantize "$(float_file "$1")" "$out" --mode dynamic -q >/dev/null
  echo "$out"
}
# the static file in QOperator form (same calibration as int8_file)
qop_file() {
  local out="$W/$1_qop.onnx"
  int8_file "$1" >/dev/null
  [[ -f "$out" ]] || "$ONNXQ" quantize "$(float_file "$1")" "$out" --calib "$W/calib_$1.npy" --format qoperator -q >/dev/null
  echo "$out"
}
# the int8 file onnxq makes for the model
int8_file() {
  local f out="$W/$1_int8.onnx"
  f=$(float_file "$1")
  if [[ ! -f "$out" ]]; then
    case $1 in
      bert_encoder|fmnist_mlp) "$ONNXQ" quantize "$f" "$out" --mode dynamic -q >/dev/null ;;
      fmnist_cnn) "$ONNXQ" quantize "$f" "$out" --calib tests/fixtures/fmnist_test_1000_x.npy --samples 200 -q >/dev/null ;;
      *) $PY -c "import numpy as np; np.save('$W/calib_$1.npy', np.random.default_rng(0).standard_normal((32,3,224,224)).astype(np.float32))"
         "$ONNXQ" quantize "$f" "$out" --calib "$W/calib_$1.npy" -q >/dev/null ;;
    esac
  fi
  echo "$out"
}
shape_opts() { case $1 in fmnist_*) echo "--shape input=32x1x28x28" ;; *) echo "" ;; esac; }

printf '%-13s %-5s %7s %10s %10s %10s %11s %12s\n' model prec threads onnxq_ms ort_ms torch_ms onnxq/ort onnxq/torch
for name in $MODELS; do
  precs="float int8"
  [[ $name == resnet18 || $name == mobilenet_v2 ]] && precs="float int8 qop dyn"
  for prec in $precs; do
    case $prec in
      float) f=$(float_file "$name") ;; int8) f=$(int8_file "$name") ;; qop) f=$(qop_file "$name") ;;
      dyn) f=$(dyn_file "$name") ;;
    esac
    # shellcheck disable=SC2046
    args=$(node scripts/ort_run.js inputs "$f" -o "$W/in_$name" --seed 1 $(shape_opts "$name"))
    for t in 1 2; do
      q=() o=() p=()
      for ((r = 0; r < ROUNDS; r++)); do
        # shellcheck disable=SC2086
        q+=("$($ONNXQ bench "$f" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" --json | median || echo nan)")
        # shellcheck disable=SC2086
        o+=("$(node scripts/ort_run.js bench "$f" $args --threads "$t" --warmup "$WARMUP" --iters "$ITERS" | median || echo nan)")
        # PyTorch has no dynamically quantized Conv (dyn) and one int8 model per architecture (int8): no torch column
        if [[ $prec == dyn || $prec == qop ]]; then p+=(nan); else
        p+=("$(OMP_WAIT_POLICY="$TORCH_OMP_WAIT" $PY bench/peers/torch_bench.py "$name" "$prec" "$t" "$WARMUP" "$ITERS" | median || echo nan)")
        fi
      done
      $PY - "$name" "$prec" "$t" "${q[*]}" "${o[*]}" "${p[*]}" <<'PYEOF'
import math, sys
name, prec, t = sys.argv[1:4]
q, o, p = (min(map(float, a.split())) for a in sys.argv[4:7])
r = lambda a, b: f"{a / b:.2f}" if math.isfinite(a) and math.isfinite(b) and b > 0 else "-"
print(f"{name:<13} {prec:<5} {t:>7} {q:10.3f} {o:10.3f} {p:10.3f} {r(q, o):>11} {r(q, p):>12}")
PYEOF
    done
  done
done
echo "PyTorch int8 engine: onednn (Debian's torch 1.13 has no fbgemm); torch OMP_WAIT_POLICY=$TORCH_OMP_WAIT"
