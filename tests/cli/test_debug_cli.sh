#!/bin/sh
# onnxq debug (the numeric suite) on the Fashion-MNIST CNN fixture:
#  - a normal static quantization: every quantized layer matched, SQNRs finite, sorted worst first,
#    the report JSON has the documented keys, integer and emulated runs agree;
#  - the real check that the ranking finds the culprit: one activation range is made 40x too wide
#    in the calibration table, and the layer writing it must come out worst, with the lowest own
#    SQNR, and be the suggested exclusion, whose node name `quantize --exclude` takes.
# usage: test_debug_cli.sh ONNXQ SOURCE_DIR WORK_DIR
set -eu
ONNXQ=$1 SRC=$2 WORK=$3
rm -rf "$WORK"; mkdir -p "$WORK"
F=$SRC/tests/fixtures/fmnist_cnn/model.onnx X=$SRC/tests/fixtures/fmnist_test_1000_x.npy
fail() { echo "FAIL: $*" >&2; exit 1; }
PY=/usr/bin/python3

"$ONNXQ" calibrate "$F" --calib "$X" -o "$WORK/table.json" -q >/dev/null || fail "calibrate"
"$ONNXQ" quantize "$F" "$WORK/q.onnx" --table "$WORK/table.json" >"$WORK/quantize.txt" || fail "quantize"
# one line per quantized weight, named after its node (the names once came out as stack garbage)
grep -q '^\[1/3\] /0/Conv  .* per-channel  sqnr' "$WORK/quantize.txt" || fail "per-weight lines: $(head -5 "$WORK/quantize.txt")"
"$ONNXQ" debug "$F" "$WORK/q.onnx" --data "$X" --samples 64 -q --report "$WORK/ok.json" >"$WORK/ok.txt" || fail "debug"
"$ONNXQ" debug "$F" "$WORK/q.onnx" --data "$X" --samples 64 -q --emulate --report "$WORK/emu.json" >/dev/null ||
    fail "debug --emulate"

# the second conv's output range 40x too wide: its quantization step becomes 40x coarser
$PY - "$WORK/table.json" "$WORK/bad_table.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["tensors"]["/6/Relu_output_0"]["max"] *= 40
json.dump(t, open(sys.argv[2], "w"))
PY
"$ONNXQ" quantize "$F" "$WORK/bad.onnx" --table "$WORK/bad_table.json" -q >/dev/null || fail "quantize with bad table"
"$ONNXQ" debug "$F" "$WORK/bad.onnx" --data "$X" --samples 64 -q --report "$WORK/bad.json" >"$WORK/bad.txt" ||
    fail "debug of bad model"
"$ONNXQ" quantize "$F" "$WORK/fixed.onnx" --table "$WORK/bad_table.json" --exclude /4/Conv -q >/dev/null ||
    fail "quantize --exclude"
"$ONNXQ" debug "$F" "$WORK/fixed.onnx" --data "$X" --samples 16 -q --report "$WORK/fixed.json" >/dev/null ||
    fail "debug of the model with /4/Conv excluded"

$PY - "$WORK" <<'PY' || exit 1
import json, math, sys
W = sys.argv[1]
ok, emu, bad = (json.load(open(f"{W}/{n}.json")) for n in ("ok", "emu", "bad"))
err = []
def check(c, m):
    if not c: err.append(m)
for r in (ok, emu, bad):
    check(r["onnxq_report"] == 1 and r["kind"] == "debug", "header")
    for k in ("float_model", "quant_model", "samples", "emulate", "layers", "suggested_exclude"):
        check(k in r, f"key {k}")
    L = r["layers"]
    check(len(L) == 7, f"{len(L)} layers, expected 7 (input, 2 conv, 2 maxpool, flatten, gemm)")
    s = [l["sqnr_db"] for l in L]
    check(all(isinstance(v, (int, float)) and math.isfinite(v) for v in s), f"non-finite SQNR {s}")
    check(s == sorted(s), f"not sorted worst first: {s}")
    check(r["samples"] == 64, "samples")
check({l["node"] for l in ok["layers"]} >= {"/0/Conv", "/4/Conv", "/9/Gemm", "input"}, "layer names")
check(all(l["weight_sqnr_db"] > 30 for l in ok["layers"] if l["op_type"] in ("Conv", "Gemm")), "weight SQNR")
check(ok["layers"][0]["sqnr_db"] > 25, f"normal model worst layer only {ok['layers'][0]['sqnr_db']} dB")
check(emu["emulate"] is True and ok["emulate"] is False, "emulate flag")
e = {l["node"]: l["sqnr_db"] for l in emu["layers"]}
check(all(abs(e[l["node"]] - l["sqnr_db"]) < 0.5 for l in ok["layers"]), "emulated and integer runs differ")
# the planted culprit
w = bad["layers"][0]
check(w["node"] == "/4/Conv", f"worst layer is {w['node']}, expected /4/Conv")
own = {l["node"]: l["own_sqnr_db"] for l in bad["layers"] if l["own_sqnr_db"] is not None}
check(min(own, key=own.get) == "/4/Conv", f"lowest own SQNR at {min(own, key=own.get)}")
okd = {l["node"]: l for l in ok["layers"]}
check(own["/4/Conv"] < okd["/4/Conv"]["own_sqnr_db"] - 15, "the bad range did not cost the layer 15 dB")
check(bad["suggested_exclude"] == ["/4/Conv"], f"suggested {bad['suggested_exclude']}")
fixed = json.load(open(f"{W}/fixed.json"))
check("/4/Conv" not in {l["node"] for l in fixed["layers"]} and len(fixed["layers"]) >= 3,
      "--exclude /4/Conv did not keep that layer in float")
if err:
    print("FAIL:", *err, sep="\n  ", file=sys.stderr); sys.exit(1)
print(f"debug ok: worst {w['node']} {w['sqnr_db']:.1f} dB (own {own['/4/Conv']:.1f}, normal {okd['/4/Conv']['own_sqnr_db']:.1f})")
PY

# --target-agreement: the search reports each step; the model it writes agrees with float at
# least as often as the plain quantization (step 0), as `compare` measures it independently
M=$SRC/tests/fixtures/fmnist_mlp/model.onnx
"$ONNXQ" quantize "$M" "$WORK/target.onnx" --calib "$X" --target-agreement 0.999 -q >"$WORK/target.txt" ||
    fail "quantize --target-agreement"
grep -q '^\[target 0\] kept in float: (none)' "$WORK/target.txt" || fail "no step 0 line: $(cat "$WORK/target.txt")"
"$ONNXQ" compare "$M" "$WORK/target.onnx" --data "$X" -q --report "$WORK/target.json" >/dev/null || fail "compare target"
$PY - "$WORK/target.txt" "$WORK/target.json" <<'PY' || exit 1
import json, re, sys
txt = open(sys.argv[1]).read()
steps = [float(a) for a in re.findall(r"top-1 agreement ([0-9.]+)%", txt)]
final = re.search(r"top-1 agreement ([0-9.]+)% (meets|MISSES)", txt)
got = 100 * (1 - json.load(open(sys.argv[2]))["outputs"][0]["argmax_disagreement"])
ok = final and abs(float(final.group(1)) - got) < 1e-6 and got >= steps[0]
print(f"target search: step 0 {steps[0]:.2f}% -> {got:.2f}% ({final.group(2) if final else '?'})")
sys.exit(0 if ok else 1)
PY

# step 0 of the search is plain quantization with the same data (bias correction and the data-driven
# equalization included: the search once quantized from the range table alone, without them)
"$ONNXQ" quantize "$M" "$WORK/plain.onnx" --calib "$X" -q >/dev/null || fail "quantize plain"
"$ONNXQ" compare "$M" "$WORK/plain.onnx" --data "$X" -q --report "$WORK/plain.json" >/dev/null || fail "compare plain"
$PY - "$WORK/target.txt" "$WORK/plain.json" <<'PY' || fail "step 0 of --target-agreement is not the plain quantization"
import json, re, sys
step0 = float(re.search(r"\[target 0\] .* top-1 agreement ([0-9.]+)%", open(sys.argv[1]).read()).group(1))
plain = 100 * (1 - json.load(open(sys.argv[2]))["outputs"][0]["argmax_disagreement"])
print(f"target step 0 {step0:.2f}%, plain quantization {plain:.2f}%")
sys.exit(0 if abs(step0 - plain) < 0.006 else 1)
PY

# run --emulate: a QDQ model run emulated in float stays within one output step of the integer run
Q=$SRC/tests/fixtures/qdq_cnn.onnx
"$ONNXQ" run "$Q" --random -o "$WORK/int" >/dev/null || fail "run qdq_cnn"
"$ONNXQ" run "$Q" --random --emulate -o "$WORK/emu" >/dev/null || fail "run --emulate"
# the session log says what was fused (and, with --emulate, nothing is)
ONNXQ_LOG=info "$ONNXQ" run "$Q" --random 2>&1 >/dev/null | grep -q "fuse_qdq: .* [1-9][0-9]* nodes fused into integer operators" ||
    fail "ONNXQ_LOG=info does not report the QDQ fusion"
if ONNXQ_LOG=info "$ONNXQ" run "$Q" --random --emulate 2>&1 >/dev/null | grep -q "fuse_qdq"; then fail "--emulate fused"; fi
$PY - "$Q" "$WORK/int" "$WORK/emu" <<'PY' || fail "emulated run differs from the integer run by more than one step"
import glob, os, sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
for n in m.graph.node:  # PyTorch exports scales as Constant nodes
    if n.op_type == "Constant":
        init[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == m.graph.output[0].name][0]
step = float(init[dq.input[1]]) if dq.input[1] in init else None
(fi,), (fe,) = glob.glob(sys.argv[2] + "/*.npy"), glob.glob(sys.argv[3] + "/*.npy")
d = np.abs(np.load(fi) - np.load(fe)).max()
print(f"run --emulate: max |integer - emulated| = {d:.3g} (step {step})")
sys.exit(0 if step and d <= step * 1.001 else 1)
PY

# errors: a model that is not a QDQ quantization of the float one; missing data
if "$ONNXQ" debug "$F" "$F" --data "$X" -q 2>"$WORK/err"; then fail "float vs float accepted"; fi
grep -q "QuantizeLinear" "$WORK/err" || fail "float vs float: $(cat "$WORK/err")"
if "$ONNXQ" debug "$F" "$WORK/q.onnx" --data "$WORK/none.npy" -q 2>"$WORK/err"; then fail "missing data accepted"; fi
grep -q "none.npy" "$WORK/err" || fail "missing data not named"
echo "debug: ok"
