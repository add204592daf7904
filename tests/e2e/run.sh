#!/usr/bin/env bash
# End-to-end check: run onnxq and onnxruntime on exported + real pretrained models with the same inputs, compare all
# outputs (rel = max|a-b|/max|b| <= 1e-4) and onnxq vs PyTorch. Env: ONNXQ="cmd" overrides build/onnxq; E2E_MODELS="a b".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
W="$ROOT/.cache/e2e"
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

scripts/install-deps.sh --e2e
scripts/fetch-models.sh >/dev/null
$PY scripts/export_torch.py
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j2
  ONNXQ="$ROOT/build/onnxq"
fi
echo "onnxq command: $ONNXQ"

# name | model file | options for `ort_run.js inputs` (valid shapes/values for models with symbolic or state inputs)
MODELS="
resnet18|resnet18.onnx|
mobilenet_v2|mobilenet_v2.onnx|
bert_encoder|bert_encoder.onnx|
mlp|mlp.onnx|
cnn|cnn.onnx|
lstm|lstm.onnx|
ocr_cls|ch_ppocr_mobile_v2.0_cls_infer.onnx|--shape x=1x3x48x192
ocr_rec|ch_PP-OCRv4_rec_infer.onnx|--shape x=1x3x48x320
blazeface|face_detection_front_128x128_barracuda.onnx|
melspectrogram|melspectrogram.onnx|--shape input=1x1280
oww_embedding|embedding_model.onnx|--shape input_1=1x76x32x1
hey_mycroft|hey_mycroft_v0.1.onnx|
silero_vad|silero_vad_legacy.onnx|--shape input=1x512 --fill sr=16000 --fill h=0 --fill c=0
"
TORCH_REF="resnet18 mobilenet_v2 bert_encoder mlp cnn lstm"

fail=0
printf '%-38s %-22s %10s %10s %10s  %s\n' model output max_abs mean_abs rel status
while IFS='|' read -r name file opts; do
  [[ -n "$name" ]] || continue
  [[ -z "${E2E_MODELS:-}" || " $E2E_MODELS " == *" $name "* ]] || continue
  d="$W/$name"; rm -rf "$d"; mkdir -p "$d"
  # shellcheck disable=SC2086  # opts and the printed -i args are meant to word-split
  args=$(node scripts/ort_run.js inputs "$M/$file" -o "$d/in" --seed 42 $opts)
  # shellcheck disable=SC2086
  node scripts/ort_run.js run "$M/$file" $args -o "$d/ort" --threads 2
  rc=0
  # shellcheck disable=SC2086
  $ONNXQ run "$M/$file" $args -o "$d/onnxq" --threads 2 >"$d/onnxq.log" 2>&1 || rc=$?
  if ((rc)); then
    printf '%-38s %-22s %10s %10s %10s  %s\n' "$name" "-" - - - "FAIL(onnxq exit $rc; see $d/onnxq.log)"
    fail=1; continue
  fi
  $PY tests/e2e/compare.py "$name" "$d/ort" "$d/onnxq" || fail=1
  # Round trip: onnxq's writer (large initializers as external data) must give onnxruntime identical outputs.
  if $ONNXQ convert "$M/$file" "$d/saved.onnx" --external-data 4096 >>"$d/onnxq.log" 2>&1; then
    # shellcheck disable=SC2086
    node scripts/ort_run.js run "$d/saved.onnx" $args -o "$d/ort_saved" --threads 2
    $PY tests/e2e/compare.py "$name" "$d/ort" "$d/ort_saved" --tol 0 --label "saved:" || fail=1
  else
    printf '%-38s %-22s %10s %10s %10s  %s\n' "$name" "saved:" - - - "FAIL(onnxq convert; see $d/onnxq.log)"; fail=1
  fi
  # onnxq vs PyTorch on the exported models' saved reference input
  if [[ " $TORCH_REF " == *" $name "* ]]; then
    in_name=$($PY -c "import onnx,sys; print(onnx.load(sys.argv[1], load_external_data=False).graph.input[0].name)" "$M/$file")
    out_name=$($PY -c "import onnx,sys; print(onnx.load(sys.argv[1], load_external_data=False).graph.output[0].name)" "$M/$file" | sed 's/[^A-Za-z0-9._-]/_/g')
    if $ONNXQ run "$M/$file" -i "$in_name=$M/$name.torch_in.npy" -o "$d/onnxq_torch" --threads 2 >>"$d/onnxq.log" 2>&1; then
      $PY tests/e2e/compare.py "$name" "$M/$name.torch_out.npy" "$d/onnxq_torch/$out_name.npy" --label "torch:" || fail=1
    else
      printf '%-38s %-22s %10s %10s %10s  %s\n' "$name" "torch:$out_name" - - - "FAIL(onnxq exit)"; fail=1
    fi
  fi
done <<<"$MODELS"

if ((fail)); then echo "e2e: FAILED"; exit 1; fi
echo "e2e: all outputs match"
