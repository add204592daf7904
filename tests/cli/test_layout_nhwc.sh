#!/bin/sh
# The channels-last layout pass (src/passes/layout_nhwc.c) on the nhwc_chain fixtures: the session
# converts the chain (its exit Transposes, named after the NCHW values they restore, show in the
# profile), and the outputs are bit-identical to the NCHW run (ONNXQ_LAYOUT=nchw) on every kernel
# variant this machine has, and to onnxruntime's (expected_N.npy).
# Usage: test_layout_nhwc.sh ONNXQ NPY_COMPARE SOURCE_DIR WORK_DIR
set -u
onnxq=$1 compare=$2 src=$3 work=$4
rm -rf "$work" && mkdir -p "$work" || exit 1
fail=0
for fx in nhwc_chain nhwc_chain_s8; do
    d="$src/tests/fixtures/$fx"
    prof=$("$onnxq" bench "$d/model.onnx" -i x="$d/input_0.npy" --iters 1 --warmup 0 --profile 2>&1)
    for t in c2 gap; do
        if ! printf '%s\n' "$prof" | grep -q "^$t  *Transpose"; then
            echo "FAIL $fx: no exit Transpose '$t': the chain was not converted"
            printf '%s\n' "$prof"
            fail=1
        fi
    done
    for isa in avx512vnni avx2 portable; do
        for layout in nhwc nchw; do
            out="$work/$fx-$isa-$layout"
            ONNXQ_ISA=$isa ONNXQ_LAYOUT=$layout "$onnxq" run "$d/model.onnx" -i x="$d/input_0.npy" -o "$out" >/dev/null ||
                { echo "FAIL $fx ($isa, $layout): run failed"; fail=1; continue; }
            "$compare" "$out/y.npy" "$d/expected_0.npy" 0 >/dev/null &&
                "$compare" "$out/mid.npy" "$d/expected_1.npy" 0 >/dev/null ||
                { echo "FAIL $fx ($isa, $layout): outputs differ from onnxruntime's"; fail=1; continue; }
            echo "ok   $fx ($isa, $layout): equal to onnxruntime's outputs"
        done
    done
done
exit $fail
