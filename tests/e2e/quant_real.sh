#!/usr/bin/env bash
# Static quantization of the real pretrained models (and the random-weight torchvision nets) with calibration on
# real inputs, judged on held-out inputs: agreement, SQNR, size ratio, onnxruntime runs the file (quant_real.py).
# Env: ONNXQ="cmd" overrides build/onnxq.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
scripts/install-deps.sh --e2e
scripts/fetch-models.sh >/dev/null
/usr/bin/python3 scripts/export_torch.py resnet18 mobilenet_v2 >/dev/null
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
printf '%-16s %7s %11s %6s\n' model agree sqnr size
/usr/bin/python3 tests/e2e/quant_real.py "$ONNXQ" "$ROOT/.cache/quant-real"
