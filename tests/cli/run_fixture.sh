#!/bin/sh
# Runs `onnxq run` on one fixture folder (model.onnx + io.txt + input/expected .npy files)
# and compares every output with the expected one.
# Usage: run_fixture.sh ONNXQ NPY_COMPARE FIXTURE_DIR WORK_DIR   (exit 77: nothing to compare)
set -u
onnxq=$1 compare=$2 fixture=$3 work=$4
[ -f "$fixture/model.onnx" ] && [ -f "$fixture/io.txt" ] || { echo "no model.onnx/io.txt in $fixture"; exit 77; }
rm -rf "$work" && mkdir -p "$work" || exit 1

set --
while read -r kind name file; do
    [ "$kind" = input ] && set -- "$@" -i "$name=$fixture/$file"
    if [ "$kind" = output ] && [ ! -f "$fixture/$file" ]; then
        echo "expected output $fixture/$file is missing: skipping"
        exit 77
    fi
done < "$fixture/io.txt"

echo "+ $onnxq run $fixture/model.onnx $* -o $work"
"$onnxq" run "$fixture/model.onnx" "$@" -o "$work" || exit 1

status=0
while read -r kind name file; do
    [ "$kind" = output ] || continue
    safe=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
    "$compare" "$work/$safe.npy" "$fixture/$file" 1e-4 || status=1
done < "$fixture/io.txt"
exit $status
