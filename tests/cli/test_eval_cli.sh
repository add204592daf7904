#!/bin/sh
# CLI checks of the measuring commands: `onnxq compare`, `onnxq eval` and
# multi-model `onnxq bench` on the committed Fashion-MNIST fixtures, their
# --report JSON (docs/reports.md) and their error lines.
# Usage: test_eval_cli.sh ONNXQ SOURCE_DIR WORK_DIR SECTION   (SECTION: compare | eval | bench)
set -u
onnxq=$1 src=$2 work=$3 section=$4
rm -rf "$work" && mkdir -p "$work" || exit 1
checks=0 failed=0
out="$work/stdout" err="$work/stderr"
fx="$src/tests/fixtures"
cnn="$fx/fmnist_cnn/model.onnx" mlp="$fx/fmnist_mlp/model.onnx" lstm="$fx/lstm_small/model.onnx"
x="$fx/fmnist_test_1000_x.npy" y="$fx/fmnist_test_1000_y.npy"

fail() { failed=$((failed + 1)); echo "FAIL: $*"; echo "--- stdout:"; head -20 "$out"; echo "--- stderr:"; head -20 "$err"; }
r() { last="$*"; "$@" >"$out" 2>"$err"; rc=$?; echo "+ $* -> $rc"; }
expect_ok() { checks=$((checks + 1)); [ "$rc" -eq 0 ] || fail "expected exit 0: $last"; }
expect_fail() { checks=$((checks + 1)); [ "$rc" -ne 0 ] || fail "expected a non-zero exit: $last"; }
expect_usage() { checks=$((checks + 1)); [ "$rc" -eq 2 ] || fail "expected exit 2 (usage): $last"; }
expect_out() { checks=$((checks + 1)); grep -q -e "$1" "$out" || fail "stdout lacks '$1': $last"; }
expect_err() { checks=$((checks + 1)); grep -q -e "$1" "$err" || fail "stderr lacks '$1': $last"; }
expect_error_line() { # one "onnxq: error:" line on stderr (a progress bar line may precede it)
    checks=$((checks + 1))
    [ "$(grep -c '^onnxq: error: \|onnxq: error: ' "$err")" -eq 1 ] && [ "$(grep -c 'error' "$err")" -eq 1 ] ||
        fail "stderr is not one 'onnxq: error:' line: $last"
}
# json FILE PYTHON-ASSERTIONS: the file parses and the assertions on `d` hold
json() {
    checks=$((checks + 1))
    /usr/bin/python3 -c 'import json' 2>/dev/null || return 0
    /usr/bin/python3 - "$1" "$2" <<'PY' || fail "JSON check failed on $1: $2"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("onnxq_report", "kind", "label", "onnxq_version", "created", "machine"):
    assert k in d, "header lacks " + k
assert set(d["machine"]) >= {"isa", "threads", "cores"}
exec("assert " + sys.argv[2])
PY
}

# a static int8 model of the CNN, made at test time
quantized() {
    "$onnxq" quantize "$cnn" "$work/cnn_int8.onnx" --mode static --calib "$x" --samples 200 -q >/dev/null 2>&1 ||
        "$onnxq" quantize "$cnn" "$work/cnn_int8.onnx" --mode static --calib "$x" >/dev/null 2>&1 ||
        { failed=$((failed + 1)); echo "FAIL: cannot quantize $cnn"; }
}

case "$section" in
compare)
    r "$onnxq" compare --help; expect_ok; expect_out 'usage: onnxq compare'
    r "$onnxq" help compare; expect_ok; expect_out 'usage: onnxq compare'
    # a model against itself: no difference at all
    r "$onnxq" compare "$cnn" "$cnn" --random 16 --threads 1 -q --report "$work/self.json"; expect_ok
    expect_out 'logits'; expect_out 'speed ratio'
    json "$work/self.json" 'd["kind"] == "compare" and d["samples"] == 16 and d["data"] == "random:16" and d["size_ratio"] == 1.0 and [(o["name"], o["mean_abs_diff"], o["max_abs_diff"], o["mean_max_abs_diff"], o["sqnr_db"], o["cosine"], o["argmax_disagreement"]) for o in d["outputs"]] == [("logits", 0.0, 0.0, 0.0, None, 1.0, 0.0)]'
    # float vs static int8 on labelled data
    quantized
    r "$onnxq" compare "$cnn" "$work/cnn_int8.onnx" --data "$x" --labels "$y" --samples 300 --batch 4 \
        --label "static cnn" --report "$work/cmp.json"; expect_ok
    expect_out 'mean_abs'; expect_out 'sqnr_db'; expect_out 'argmax_dis'; expect_out 'top1_float'
    expect_err 'comparing \['
    json "$work/cmp.json" 'd["label"] == "static cnn" and d["samples"] == 300 and d["runs"] == 75 and d["labels"].endswith("y.npy") and set(d["float_model"]) == {"path", "bytes", "latency_ms"} and set(d["float_model"]["latency_ms"]) >= {"median", "p10", "p90"} and d["quant_model"]["bytes"] < d["float_model"]["bytes"] and 0 < d["size_ratio"] < 1 and d["speed_ratio"] > 0'
    json "$work/cmp.json" 'len(d["outputs"]) == 1 and 0 < d["outputs"][0]["mean_abs_diff"] <= d["outputs"][0]["mean_max_abs_diff"] <= d["outputs"][0]["max_abs_diff"] and d["outputs"][0]["sqnr_db"] > 20 and 0.99 < d["outputs"][0]["cosine"] <= 1 and 0 <= d["outputs"][0]["argmax_disagreement"] < 0.05 and 0.8 < d["outputs"][0]["top1_float"] <= 1 and 0.8 < d["outputs"][0]["top1_quant"] <= 1'
    # --emulate: the QDQ model against itself run int8-emulated in float stays close
    r "$onnxq" compare "$work/cnn_int8.onnx" "$work/cnn_int8.onnx" --data "$x" --samples 50 --emulate -q \
        --report "$work/emu.json"; expect_ok; expect_out 'emulated'
    json "$work/emu.json" 'd["emulate"] is True and (d["outputs"][0]["sqnr_db"] is None or d["outputs"][0]["sqnr_db"] > 30) and d["outputs"][0]["argmax_disagreement"] <= 0.02'
    # errors: one line, non-zero exit
    r "$onnxq" compare "$cnn" "$work/missing.onnx" --random 2 -q; expect_fail; expect_error_line; expect_err 'missing.onnx'
    r "$onnxq" compare "$cnn" "$lstm" --random 2 -q; expect_fail; expect_error_line; expect_err 'lstm_small'
    r "$onnxq" compare "$cnn" "$cnn" --data "$fx/lstm_small/input_0.npy" -q; expect_fail; expect_error_line
    expect_err 'input_0.npy'
    r "$onnxq" compare "$cnn" "$cnn" --data "$work/nothing.npy" -q; expect_fail; expect_error_line; expect_err 'nothing.npy'
    r "$onnxq" compare "$cnn" "$cnn" --random 2 --report "$work/no/such/dir/r.json" -q; expect_fail; expect_error_line
    expect_err 'r.json'
    r "$onnxq" compare "$cnn" "$cnn"; expect_usage; expect_err 'either --data'
    r "$onnxq" compare "$cnn"; expect_usage; expect_err 'QUANT.onnx'
    r "$onnxq" compare "$cnn" "$cnn" --random 0; expect_usage
    r "$onnxq" compare "$cnn" "$cnn" --random 2 --labels "$y"; expect_usage; expect_err 'labels'
    ;;
eval)
    r "$onnxq" eval --help; expect_ok; expect_out 'usage: onnxq eval'
    quantized
    # the float CNN's top-1 on the 1000-image subset is 90.90% (tests/fixtures/README.md)
    r "$onnxq" eval "$cnn" "$work/cnn_int8.onnx" "$mlp" --data "$x" --labels "$y" --report "$work/eval.json"; expect_ok
    expect_out '90\.90%'; expect_out 'cnn_int8.onnx'; expect_out 'top5'
    json "$work/eval.json" 'd["kind"] == "eval" and d["samples"] == 1000 and [m["path"].split("/")[-1] for m in d["models"]] == ["model.onnx", "cnn_int8.onnx", "model.onnx"] and abs(d["models"][0]["top1"] - 0.909) < 1e-9 and all(set(m) >= {"path", "label", "bytes", "top1", "top5", "output"} for m in d["models"]) and all(m["top1"] <= m["top5"] <= 1 for m in d["models"]) and d["models"][1]["top1"] > 0.85 and d["models"][2]["top1"] > 0.8 and d["models"][0]["output"] == "logits"'
    r "$onnxq" eval "$cnn" --data "$x" --labels "$y" --samples 100 --top 1 -q; expect_ok; expect_out 'top1'
    # errors
    r "$onnxq" eval "$cnn" --data "$x" -q; expect_fail; expect_error_line; expect_err 'labels'
    r "$onnxq" eval "$work/missing.onnx" --data "$x" --labels "$y"; expect_fail; expect_error_line; expect_err 'missing.onnx'
    r "$onnxq" eval "$lstm" --data "$x" --labels "$y" -q; expect_fail; expect_error_line
    r "$onnxq" eval "$cnn" --data "$x" --labels "$y" --output nope -q; expect_fail; expect_error_line; expect_err 'nope'
    r "$onnxq" eval "$cnn"; expect_usage; expect_err 'data'
    r "$onnxq" eval --data "$x"; expect_usage; expect_err 'MODEL'
    ;;
bench)
    quantized
    r "$onnxq" bench "$cnn" "$work/cnn_int8.onnx" "$mlp" --random --warmup 1 --iters 3 --threads 1 --batch 4 \
        --report "$work/bench.json"; expect_ok
    expect_out 'ratio'; expect_out 'peak_MiB'; expect_out 'cnn_int8.onnx'
    json "$work/bench.json" 'd["kind"] == "bench" and d["batch"] == 4 and d["warmup"] == 1 and d["iters"] == 3 and len(d["models"]) == 3 and d["models"][0]["ratio_to_first"] == 1.0 and all(set(m) >= {"path", "label", "bytes", "latency_ms", "throughput_per_s", "peak_rss_bytes", "ratio_to_first"} for m in d["models"]) and all(m["latency_ms"]["p10"] <= m["latency_ms"]["median"] <= m["latency_ms"]["p90"] for m in d["models"]) and all(m["peak_rss_bytes"] is None or m["peak_rss_bytes"] > 0 for m in d["models"]) and all(m["batch"] == 4 for m in d["models"])'
    # --json: one object per model and line, with the single-model keys
    r "$onnxq" bench "$cnn" "$mlp" --random --warmup 0 --iters 2 --json; expect_ok
    checks=$((checks + 1))
    [ "$(wc -l < "$out")" -eq 2 ] || fail "bench --json of two models is not two lines"
    checks=$((checks + 1))
    /usr/bin/python3 -c 'import json' 2>/dev/null && { /usr/bin/python3 - "$out" <<'PY' || fail "bench --json lines"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert all({"model", "median_ms", "p10_ms", "p90_ms", "mean_ms", "throughput_per_s", "peak_rss_bytes", "ratio_to_first"} <= set(r) for r in rows)
assert rows[0]["ratio_to_first"] == 1.0
PY
    }
    r "$onnxq" bench "$cnn" --random --warmup 0 --iters 2; expect_ok; expect_out 'median:'; expect_out 'peak rss'
    r "$onnxq" bench "$cnn" "$work/missing.onnx" --random --iters 1; expect_fail; expect_error_line; expect_err 'missing.onnx'
    r "$onnxq" bench "$cnn" --random --batch 0; expect_usage; expect_err 'batch'
    ;;
*)
    echo "unknown section '$section'"
    exit 2
    ;;
esac
echo "$section: $checks checks, $failed failed"
[ "$failed" -eq 0 ]
