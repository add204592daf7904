# Sourced by the example scripts: paths, the onnxq binary (built if missing), models and a JSON reader.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
M="$ROOT/.cache/models"
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [[ -z "${ONNXQ:-}" ]]; then
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target onnxq_cli >/dev/null
  ONNXQ="$ROOT/build/onnxq"
fi
THREADS="${THREADS:-1}"
# work folder of the calling example
W="$ROOT/.cache/examples/$(basename "$0" .sh)"
mkdir -p "$W"
# torch exports (random weights) and the e2e dependencies, once
need_models() {
  scripts/install-deps.sh --e2e >/dev/null
  local missing=()
  for n in "$@"; do [[ -f "$M/$n.onnx" ]] || missing+=("$n"); done
  if ((${#missing[@]})); then $PY scripts/export_torch.py "${missing[@]}" >/dev/null; fi
}
# jget FILE.json 'python expression over r' -> value
jget() { $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }
size() { stat -c %s "$1"; }
# median ms of MODEL from a multi-model bench report, by index
