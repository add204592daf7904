#!/bin/sh
# `onnxq quantize` inside If branches (tests/fixtures/if_quant: Conv + MatMul in the then-branch, the MatMul's
# weight an initializer of the main graph; a MatMul in the else-branch). The calibration data takes only the
# then-branch: static mode quantizes it and keeps the else-branch float, naming it; dynamic mode quantizes both
# MatMuls. tests/fixtures/loop_quant: a MatMul in a Loop body. tests/fixtures/lstm_small: dynamic LSTM.
# Outputs stay close to float.
# Usage: test_quant_subgraph.sh ONNXQ NPY_COMPARE SOURCE_DIR WORK_DIR
set -u
onnxq=$1 compare=$2 src=$3 work=$4
fx="$src/tests/fixtures/if_quant"
rm -rf "$work" && mkdir -p "$work" || exit 1
checks=0 failed=0
out="$work/stdout" err="$work/stderr"
fail() { failed=$((failed + 1)); echo "FAIL: $*"; echo "--- stdout:"; head -20 "$out"; echo "--- stderr:"; head -20 "$err"; }
r() { last="$*"; "$@" >"$out" 2>"$err"; rc=$?; echo "+ $* -> $rc"; }
expect_ok() { checks=$((checks + 1)); [ "$rc" -eq 0 ] || fail "expected exit 0: $last"; }
expect_out() { checks=$((checks + 1)); grep -q -e "$1" "$out" || fail "stdout lacks '$1': $last"; }
# op COUNT: the `onnxq info` histogram (every subgraph included) lists op with this count
expect_op() { checks=$((checks + 1)); grep -q -e "^  $1 *$2\$" "$out" || fail "info lacks '$1 $2': $last"; }
close() { checks=$((checks + 1)); "$compare" "$1" "$2" "$3" || fail "$1 differs from $2 by more than $3"; }

run_both() { # MODEL DIR: outputs for the then (input_1) and else (cond_false.npy) inputs
    r "$onnxq" run "$1" -i "x=$fx/input_0.npy" -i "cond=$fx/input_1.npy" -o "$2/then"; expect_ok
    r "$onnxq" run "$1" -i "x=$fx/input_0.npy" -i "cond=$fx/cond_false.npy" -o "$2/else"; expect_ok
}
run_both "$fx/model.onnx" "$work/float"
close "$work/float/then/y.npy" "$fx/expected_0.npy" 1e-4

# static QDQ: the then-branch in int8, the else-branch float and named
r "$onnxq" quantize "$fx/model.onnx" "$work/qdq.onnx" --calib "$fx/calib.npz"; expect_ok
expect_out '\[1/2\] branch.then_branch/then_conv .*per-channel'
expect_out '\[2/2\] branch.then_branch/then_matmul'
expect_out 'branch.else_branch/: 1 node stays float, its tensors have no calibration range.*else_matmul'
# the branch's final Add stays float: its output (the branch output) feeds no int8 node
expect_out '^nodes: 3 int8, 4 kept float'
expect_out '^kept float: branch.else_branch/: its 2 nodes (the branch did not run'
expect_out 'branch.then_branch/then_add (Add): its output feeds no int8 node'
r "$onnxq" info "$work/qdq.onnx"; expect_ok
expect_op QuantizeLinear 3; expect_op DequantizeLinear 6; expect_op MatMul 2
run_both "$work/qdq.onnx" "$work/qdq"
close "$work/qdq/then/y.npy" "$work/float/then/y.npy" 0.1
close "$work/qdq/else/y.npy" "$work/float/else/y.npy" 1e-6

# debug: the layers inside the then-branch are matched and measured (the calibration data takes that branch)
r "$onnxq" debug "$fx/model.onnx" "$work/qdq.onnx" --data "$fx/calib.npz"; expect_ok
expect_out '^3 quantized layers'; expect_out '^ *[0-9]  then_conv  *Conv  *[0-9][0-9.]*  *-  *[0-9]'
# a Loop body's activations: one value per iteration, compared iteration by iteration (the carried acc_in)
r "$onnxq" quantize "$src/tests/fixtures/loop_quant/model.onnx" "$work/loop_dbg.onnx" --calib "$src/tests/fixtures/loop_quant/calib.npz"
r "$onnxq" debug "$src/tests/fixtures/loop_quant/model.onnx" "$work/loop_dbg.onnx" --data "$src/tests/fixtures/loop_quant/calib.npz"
expect_ok; expect_out '^1 quantized layers'; expect_out '^ *1  acc_in  *(graph input)  *[3-9][0-9][.][0-9]'

# QOperator: the branch's Conv and MatMul become integer operators
r "$onnxq" quantize "$fx/model.onnx" "$work/qop.onnx" --calib "$fx/calib.npz" --format qoperator; expect_ok
r "$onnxq" info "$work/qop.onnx"; expect_ok
# (the MatMul's reader, the branch's final Add, is float: its integer product is scaled to float)
expect_op QLinearConv 1; expect_op com.microsoft:MatMulIntegerToFloat 1
run_both "$work/qop.onnx" "$work/qop"
close "$work/qop/then/y.npy" "$work/float/then/y.npy" 0.1

# dynamic: both branches' MatMuls (the then-branch's weight comes from the main graph) and the Conv
r "$onnxq" quantize "$fx/model.onnx" "$work/dyn.onnx" --mode dynamic; expect_ok
expect_out 'branch.else_branch/else_matmul'; expect_out 'branch.then_branch/then_matmul'
expect_out 'branch.then_branch/then_conv .*per-channel'
expect_out '^nodes: 3 int8'
r "$onnxq" info "$work/dyn.onnx"; expect_ok
expect_op com.microsoft:DynamicQuantizeMatMul 2; expect_op ConvInteger 1
run_both "$work/dyn.onnx" "$work/dyn"
close "$work/dyn/then/y.npy" "$work/float/then/y.npy" 0.05
close "$work/dyn/else/y.npy" "$work/float/else/y.npy" 0.05

# a Loop body: the MatMul reads the body's carried input (its range comes from every iteration)
lq="$src/tests/fixtures/loop_quant"
r "$onnxq" quantize "$lq/model.onnx" "$work/loop.onnx" --calib "$lq/calib.npz"; expect_ok
expect_out '\[1/1\] loop.body/body_matmul .*per-channel'
expect_out '^nodes: 1 int8'
r "$onnxq" run "$work/loop.onnx" -i "n=$lq/input_0.npy" -i "x=$lq/input_1.npy" -o "$work/loop"; expect_ok
close "$work/loop/acc.npy" "$lq/expected_0.npy" 0.02
r "$onnxq" quantize "$lq/model.onnx" "$work/loopd.onnx" --mode dynamic; expect_ok
r "$onnxq" run "$work/loopd.onnx" -i "n=$lq/input_0.npy" -i "x=$lq/input_1.npy" -o "$work/loopd"; expect_ok
close "$work/loopd/acc.npy" "$lq/expected_0.npy" 0.02

# symmetric int8 activations keep each Relu in the file (a standard QLinearConv cannot clamp at 0); the session
# folds DQ -> Relu -> Q into the convolution's output stage, so only the model's input Q and output DQ stay, and
# the result equals the int8 emulation in float
cnn="$src/tests/fixtures/fmnist_cnn"
for fmt in qdq qoperator; do
    r "$onnxq" quantize "$cnn/model.onnx" "$work/cnn_s8_$fmt.onnx" --calib "$src/tests/fixtures/fmnist_test_1000_x.npy" \
        --samples 100 --activation-type int8 --symmetric-activation --format "$fmt"; expect_ok
    r "$onnxq" info "$work/cnn_s8_$fmt.onnx"; expect_ok; expect_op Relu 2
    ONNXQ_LOG=info r "$onnxq" run "$work/cnn_s8_$fmt.onnx" -i "input=$cnn/input_0.npy" -o "$work/cnn_s8_$fmt"; expect_ok
    checks=$((checks + 1)); grep -q '0 stayed float; 1 QuantizeLinear and 1 DequantizeLinear left' "$err" ||
        fail "$fmt: Relu between DQ and Q not run on int8"
    r "$onnxq" run "$work/cnn_s8_$fmt.onnx" -i "input=$cnn/input_0.npy" -o "$work/cnn_s8e_$fmt" --emulate; expect_ok
    close "$work/cnn_s8_$fmt/logits.npy" "$work/cnn_s8e_$fmt/logits.npy" 1e-6
done

# dynamic Conv (tests/fixtures/fmnist_cnn): DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul -> Add as
# onnxruntime writes it; the session fuses each chain into one integer convolution
cnn="$src/tests/fixtures/fmnist_cnn"
r "$onnxq" quantize "$cnn/model.onnx" "$work/cnn_dyn.onnx" --mode dynamic; expect_ok
expect_out '\[1/3\] /0/Conv .*per-channel'; expect_out '^nodes: 3 int8, 0 kept float'
r "$onnxq" info "$work/cnn_dyn.onnx"; expect_ok
expect_op ConvInteger 2; expect_op DynamicQuantizeLinear 2; expect_op com.microsoft:DynamicQuantizeMatMul 1
ONNXQ_LOG=info r "$onnxq" run "$work/cnn_dyn.onnx" -i "input=$cnn/input_0.npy" -o "$work/cnn_dyn"; expect_ok
checks=$((checks + 1)); grep -q 'fuse_dynamic: 2 dynamically quantized' "$err" || fail "the session did not fuse both ConvInteger chains"
close "$work/cnn_dyn/logits.npy" "$cnn/expected_0.npy" 0.02
r "$onnxq" quantize "$cnn/model.onnx" "$work/cnn_dyn_mm.onnx" --mode dynamic --ops MatMul,Gemm; expect_ok
expect_out '^nodes: 1 int8'
# the fused run equals the chain run op by op (fusion switched off: emulation mode)
r "$onnxq" run "$work/cnn_dyn.onnx" -i "input=$cnn/input_0.npy" -o "$work/cnn_dyn_chain" --emulate
[ "$rc" -eq 0 ] && close "$work/cnn_dyn/logits.npy" "$work/cnn_dyn_chain/logits.npy" 1e-6

# dynamic LSTM (tests/fixtures/lstm_small): W and R int8 per gate column in com.microsoft DynamicQuantizeLSTM
# (the default dynamic op set); the standard-operator form keeps the LSTM float and says why
ls="$src/tests/fixtures/lstm_small"
r "$onnxq" quantize "$ls/model.onnx" "$work/lstm.onnx" --mode dynamic; expect_ok
expect_out '\[1/3\] /lstm/LSTM.W .*per-channel'; expect_out '\[2/3\] /lstm/LSTM.R .*per-channel'
expect_out '^nodes: 2 int8, 0 kept float'
r "$onnxq" info "$work/lstm.onnx"; expect_ok
expect_op com.microsoft:DynamicQuantizeLSTM 1; expect_op com.microsoft:DynamicQuantizeMatMul 1
r "$onnxq" run "$work/lstm.onnx" -i "input=$ls/input_0.npy" -o "$work/lstm"; expect_ok
close "$work/lstm/logits.npy" "$ls/expected_0.npy" 0.01
r "$onnxq" quantize "$ls/model.onnx" "$work/lstm_pt.onnx" --mode dynamic --ops LSTM --per-tensor; expect_ok
expect_out '^nodes: 1 int8'; expect_out '/lstm/LSTM.R .*per-tensor'
r "$onnxq" run "$work/lstm_pt.onnx" -i "input=$ls/input_0.npy" -o "$work/lstm_pt"; expect_ok
close "$work/lstm_pt/logits.npy" "$ls/expected_0.npy" 0.02
r "$onnxq" quantize "$ls/model.onnx" "$work/lstm_mi.onnx" --mode dynamic --dynamic-form matmulinteger; expect_ok
expect_out 'kept float: /lstm/LSTM (LSTM): no standard-operator int8 form'

echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
