#!/usr/bin/env bash
# End-to-end check of QDQ models (scripts/make_qdq_models.py): onnxruntime and onnxq run the same file on the
# same random input; per output, max|a-b| in units of the output's quantization step (the scale of the
# DequantizeLinear writing it) must be <= 1, and onnxq must have fused the QDQ patterns into integer operators
# (counted from the session log, ONNXQ_LOG=info). Env: ONNXQ="cmd" overrides build/onnxq; QDQ_MODELS="a b".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
W="$ROOT/.cache/e2e-qdq"
MODELS="${QDQ_MODELS:-cnn cnn_pt resnet18 mobilenet_v2 mobilenet_v2_pt}"

missing=0
for name in $MODELS; do [[ -f "$M/${name}_qdq.onnx" ]] || missing=1; done
if ((missing)); then
  # shellcheck disable=SC2086
  $PY scripts/make_qdq_models.py $MODELS
fi
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j2 >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi

fail=0
printf '%-18s %-10s %10s %10s %9s %8s  %s\n' model output max_abs step max_steps int_ops status
for name in $MODELS; do
  f="$M/${name}_qdq.onnx"
  d="$W/$name"; rm -rf "$d"; mkdir -p "$d"
  args=$(node scripts/ort_run.js inputs "$f" -o "$d/in" --seed 42)
  # shellcheck disable=SC2086
  node scripts/ort_run.js run "$f" $args -o "$d/ort" --threads 2 >/dev/null
  rc=0
  # shellcheck disable=SC2086
  ONNXQ_LOG=info $ONNXQ run "$f" $args -o "$d/onnxq" --threads 2 >"$d/onnxq.log" 2>&1 || rc=$?
  if ((rc)); then
    printf '%-18s %-10s %10s %10s %9s %8s  %s\n' "$name" - - - - - "FAIL(onnxq exit $rc; see $d/onnxq.log)"
    fail=1; continue
  fi
  fused=$(sed -n 's/.*fuse_qdq: graph .*: \([0-9]*\) nodes fused into integer operators.*/\1/p' "$d/onnxq.log" | head -1)
  stayed=$(sed -n 's/.* \([0-9]*\) stayed float.*/\1/p' "$d/onnxq.log" | head -1)
  $PY - "$f" "$d/ort" "$d/onnxq" "$name" "${fused:-0}" "${stayed:-?}" <<'EOF' || fail=1
import os, re, sys
import numpy as np
import onnx
from onnx import numpy_helper

path, ort_dir, oq_dir, name, fused, stayed = sys.argv[1:]
m = onnx.load(path)
g = m.graph
consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
for n in g.node:
    if n.op_type == "Constant":
        consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
ok = True
for o in g.output:
    prod = [n for n in g.node if o.name in n.output]
    step = None
    if prod and prod[0].op_type == "DequantizeLinear" and prod[0].input[1] in consts:
        step = float(np.max(consts[prod[0].input[1]]))
    fn = re.sub(r"[^A-Za-z0-9._-]", "_", o.name) + ".npy"
    a = np.load(os.path.join(oq_dir, fn)).astype(np.float64)
    b = np.load(os.path.join(ort_dir, fn)).astype(np.float64)
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    steps = diff / step if step else float("nan")
    good = a.shape == b.shape and step is not None and steps <= 1.0 + 1e-6 and int(fused) > 0
    ok &= good
    status = "ok" if good else "FAIL"
    if int(fused) == 0:
        status += " (no integer operators)"
    print(f"{name:<18} {o.name[:10]:<10} {diff:10.3g} {step or float('nan'):10.3g} {steps:9.3f} {fused:>8}  "
          f"{status}; {stayed} nodes stayed float")
sys.exit(0 if ok else 1)
EOF
done
exit $fail
