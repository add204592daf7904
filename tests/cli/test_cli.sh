#!/bin/sh
# End-to-end checks of the onnxq command line: help texts, exit codes, error
# lines naming files, and run/bench/info on the committed fixtures.
# Usage: test_cli.sh ONNXQ NPY_COMPARE SOURCE_DIR WORK_DIR SECTION   (SECTION: help | errors | model)
set -u
onnxq=$1 compare=$2 src=$3 work=$4 section=$5
rm -rf "$work" && mkdir -p "$work" || exit 1
checks=0 failed=0
out="$work/stdout" err="$work/stderr"

fail() { failed=$((failed + 1)); echo "FAIL: $*"; echo "--- stdout:"; head -20 "$out"; echo "--- stderr:"; head -20 "$err"; }
# run CMD...: runs it, keeps stdout/stderr and the exit code in $rc
run() { "$@" >"$out" 2>"$err"; rc=$?; echo "+ $* -> $rc"; }
expect_ok() { checks=$((checks + 1)); [ "$rc" -eq 0 ] || fail "expected exit 0: $last"; }
expect_fail() { checks=$((checks + 1)); [ "$rc" -ne 0 ] || fail "expected a non-zero exit: $last"; }
expect_out() { checks=$((checks + 1)); grep -q -e "$1" "$out" || fail "stdout lacks '$1': $last"; }
expect_err() { checks=$((checks + 1)); grep -q -e "$1" "$err" || fail "stderr lacks '$1': $last"; }
# a library failure is one line "onnxq: error: ..." on stderr
expect_error_line() {
    checks=$((checks + 1))
    [ "$(wc -l < "$err")" -eq 1 ] && grep -q '^onnxq: error: ' "$err" || fail "stderr is not one 'onnxq: error:' line: $last"
}
r() { last="$*"; run "$@"; }

has_python_json() { /usr/bin/python3 -c 'import json' 2>/dev/null; }
check_json() { # FILE KEY... : FILE holds one JSON object with these keys
    checks=$((checks + 1))
    has_python_json || return 0
    f=$1; shift
    /usr/bin/python3 - "$f" "$@" <<'PY' || fail "bad JSON in $f"
import json, sys
obj = json.load(open(sys.argv[1]))
missing = [k for k in sys.argv[2:] if k not in obj]
assert not missing, missing
PY
}

case "$section" in
help)
    r "$onnxq" --help; expect_ok; expect_out 'usage: onnxq'
    r "$onnxq" -h; expect_ok; expect_out 'usage: onnxq'
    r "$onnxq" --version; expect_ok; expect_out '^onnxq [0-9]'
    for cmd in info run bench; do
        r "$onnxq" "$cmd" --help; expect_ok; expect_out "usage: onnxq $cmd"
        r "$onnxq" "$cmd" -h; expect_ok; expect_out "usage: onnxq $cmd"
        r "$onnxq" help "$cmd"; expect_ok; expect_out "usage: onnxq $cmd"
    done
    r "$onnxq" run model.onnx --help; expect_ok; expect_out 'usage: onnxq run'
    ;;
errors)
    r "$onnxq"; expect_fail; expect_err 'usage: onnxq'
    r "$onnxq" frobnicate; expect_fail; expect_err "^onnxq: error: unknown command 'frobnicate'"; expect_err 'usage:'
    r "$onnxq" --frobnicate; expect_fail; expect_err 'unknown option'
    r "$onnxq" help frobnicate; expect_fail; expect_err 'unknown command'
    for cmd in info run bench; do
        r "$onnxq" "$cmd"; expect_fail; expect_err 'needs a MODEL'; expect_err "usage: onnxq $cmd"
        r "$onnxq" "$cmd" --bogus m.onnx; expect_fail; expect_err "unknown option '--bogus'"; expect_err "usage: onnxq $cmd"
        r "$onnxq" "$cmd" "$work/no_such_model.onnx"; expect_fail; expect_error_line; expect_err 'no_such_model.onnx'
    done
    r "$onnxq" run m.onnx --threads; expect_fail; expect_err 'threads'
    r "$onnxq" run m.onnx --threads abc; expect_fail; expect_err 'threads'
    r "$onnxq" bench m.onnx --iters 0; expect_fail; expect_err 'iters'
    r "$onnxq" run m.onnx -i; expect_fail; expect_err 'needs a value'
    r "$onnxq" info a.onnx b.onnx; expect_fail; expect_err 'unexpected argument'
    printf 'this is not an onnx file' > "$work/garbage.onnx"
    r "$onnxq" info "$work/garbage.onnx"; expect_fail; expect_error_line; expect_err 'garbage.onnx'
    ;;
model)
    mlp="$src/tests/fixtures/fmnist_mlp/model.onnx"
    sym="$src/tests/fixtures/symbolic_batch"
    [ -f "$mlp" ] && [ -f "$sym/model.onnx" ] || { echo "fixtures missing: skipping"; exit 77; }

    r "$onnxq" info "$mlp"; expect_ok; expect_out 'inputs (1)'; expect_out 'batch,1,28,28'; expect_out 'Gemm'
    expect_out 'parameters:'; expect_out 'MiB'; expect_out 'quantized:   no'; expect_out 'supported:'
    r "$onnxq" info "$mlp" --json; expect_ok
    cp "$out" "$work/info.json"
    check_json "$work/info.json" model ir_version producer opsets inputs outputs operators parameters parameter_bytes \
        is_quantized supported

    # inputs are required unless --random
    r "$onnxq" run "$sym/model.onnx"; expect_fail; expect_error_line; expect_err "input 'x' is not given"
    r "$onnxq" run "$sym/model.onnx" -i nope=x.npy; expect_fail; expect_error_line; expect_err "no input named 'nope'"
    r "$onnxq" run "$sym/model.onnx" -i "x=$work/missing.npy"; expect_fail; expect_error_line; expect_err 'missing.npy'
    r "$onnxq" run "$mlp" -i "input=$sym/input_0.npy"; expect_fail; expect_error_line; expect_err 'shape'

    # named and positional inputs, outputs written under a folder created on the way
    r "$onnxq" run "$sym/model.onnx" -i "x=$sym/input_0.npy" -o "$work/out/a/b" --threads 1; expect_ok
    expect_out 'probs'; expect_out 'x_shape'; expect_out 'run: '
    for name in probs x_shape; do
        checks=$((checks + 1)); [ -f "$work/out/a/b/$name.npy" ] || fail "run did not write $name.npy"
    done
    r "$compare" "$work/out/a/b/probs.npy" "$sym/expected_0.npy"; expect_ok
    r "$onnxq" run "$sym/model.onnx" -i "$sym/input_0.npy" -o "$work/out2"; expect_ok
    r "$compare" "$work/out2/x_shape.npy" "$sym/expected_1.npy"; expect_ok

    # random inputs: symbolic dims become 1, the seed makes runs repeatable
    r "$onnxq" run "$mlp" --random --seed 7 -o "$work/rand1"; expect_ok; expect_out 'logits  float32 \[1,10\]'
    r "$onnxq" run "$mlp" --random --seed 7 -o "$work/rand2"; expect_ok
    r "$compare" "$work/rand1/logits.npy" "$work/rand2/logits.npy" 0; expect_ok

    # convert: onnxq's writer, with external data, gives a model that runs to the same outputs
    cnn="$src/tests/fixtures/fmnist_cnn"
    r "$onnxq" convert "$cnn/model.onnx" "$work/conv/cnn.onnx" --external-data 1024; expect_fail; expect_error_line
    mkdir -p "$work/conv"
    r "$onnxq" convert "$cnn/model.onnx" "$work/conv/cnn.onnx" --external-data 1024; expect_ok
    checks=$((checks + 1)); [ -s "$work/conv/cnn.onnx.data" ] || fail "convert wrote no external data file"
    r "$onnxq" run "$work/conv/cnn.onnx" -i "input=$cnn/input_0.npy" -o "$work/conv/out"; expect_ok
    r "$compare" "$work/conv/out/logits.npy" "$cnn/expected_0.npy"; expect_ok
    r "$onnxq" convert "$work/conv/missing.onnx" "$work/conv/x.onnx"; expect_fail; expect_error_line; expect_err 'missing.onnx'

    r "$onnxq" bench "$mlp" --random --warmup 1 --iters 3 --threads 1; expect_ok; expect_out 'median:'; expect_out 'throughput'
    r "$onnxq" bench "$mlp" --random --warmup 0 --iters 2 --threads 1 --profile; expect_ok; expect_out "profile of"; expect_out "^Gemm "; expect_out "slowest nodes"
    r "$onnxq" bench "$sym/model.onnx" -i "x=$sym/input_0.npy" --warmup 0 --iters 2 --json; expect_ok
    cp "$out" "$work/bench.json"
    check_json "$work/bench.json" model threads iters median_ms p10_ms p90_ms mean_ms isa

    # output names are sanitized into file names (needs python3-onnx to build the model)
    if /usr/bin/python3 -c 'import onnx' 2>/dev/null; then
        /usr/bin/python3 - "$work/odd.onnx" <<'PY'
import sys
from onnx import helper, TensorProto
g = helper.make_graph(
    [helper.make_node("Relu", ["in:0"], ["out/relu:0"]), helper.make_node("Neg", ["in:0"], ["neg out"])],
    "odd", [helper.make_tensor_value_info("in:0", TensorProto.FLOAT, ["B", 3])],
    [helper.make_tensor_value_info("out/relu:0", TensorProto.FLOAT, ["B", 3]),
     helper.make_tensor_value_info("neg out", TensorProto.FLOAT, ["B", 3])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 7
open(sys.argv[1], "wb").write(m.SerializeToString())
PY
        r "$onnxq" run "$work/odd.onnx" --random -o "$work/odd"; expect_ok
        for name in out_relu_0 neg_out; do
            checks=$((checks + 1)); [ -f "$work/odd/$name.npy" ] || fail "run did not write $name.npy"
        done
        r "$onnxq" info "$work/odd.onnx"; expect_ok; expect_out '\[B,3\]'
    fi
    ;;
*)
    echo "unknown section $section"; exit 2 ;;
esac

echo "test_cli $section: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
