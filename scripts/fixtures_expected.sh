#!/usr/bin/env bash
# (Re)compute expected outputs of every fixture with onnxruntime: for tests/fixtures/*/io.txt run model.onnx
# on its `input` files and write each `output` to its listed file. Usage: scripts/fixtures_expected.sh [DIR...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
dirs=("$@"); ((${#dirs[@]})) || dirs=("$ROOT"/tests/fixtures/*/)
for d in "${dirs[@]}"; do
  d="${d%/}"; [[ -f "$d/io.txt" ]] || continue
  args=()
  while read -r kind name file; do
    [[ "$kind" == input ]] && args+=(-i "$name=$d/$file")
  done < "$d/io.txt"
  rm -rf "$TMP/out"
  node "$ROOT/scripts/ort_run.js" run "$d/model.onnx" "${args[@]}" -o "$TMP/out"
  while read -r kind name file; do
    [[ "$kind" == output ]] && cp "$TMP/out/$(printf %s "$name" | sed 's/[^A-Za-z0-9._-]/_/g').npy" "$d/$file"
  done < "$d/io.txt"
  echo "expected: $(basename "$d")"
done
