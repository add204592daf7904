#!/usr/bin/env bash
# Install the project's dependencies (Debian apt + onnxruntime-node from npm); idempotent and fast when done.
# Usage: scripts/install-deps.sh [--e2e]   (--e2e adds torch, torchvision, Fashion-MNIST, OpenMP OpenBLAS, oneDNN for bench_q8_gemm,
#   skimage/scipy, DejaVu fonts and espeak-ng for the real-model data)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PKGS=(build-essential cmake protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
      clang libclang-rt-14-dev python3-numpy python3-onnx python3-pil chromium libjpeg-dev libpng-dev)
[[ "${1:-}" == "--e2e" ]] && PKGS+=(python3-torch python3-torchvision dataset-fashion-mnist libopenblas0-openmp libdnnl-dev python3-skimage python3-pil python3-scipy fonts-dejavu-core espeak-ng)
# node/npm: keep whatever provides them (e.g. a newer nodejs that bundles npm), else take Debian's.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  echo "install-deps: apt-get install ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# onnxruntime-node: its install script downloads CUDA bits, so never run scripts.
if [[ ! -f "$ROOT/node_modules/onnxruntime-node/package.json" ]]; then
  echo "install-deps: npm ci --ignore-scripts" >&2
  (cd "$ROOT" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi
