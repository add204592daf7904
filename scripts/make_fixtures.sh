#!/usr/bin/env bash
# Regenerate all committed test fixtures in tests/fixtures/ (train fmnist models, build tiny models, compute the
# expected outputs with onnxruntime, write README.md with accuracies). Needs: scripts/install-deps.sh --e2e
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
export LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$ROOT/scripts/install-deps.sh" --e2e
$PY "$ROOT/scripts/fixtures_fmnist.py"
$PY "$ROOT/scripts/fixtures_small.py"
"$ROOT/scripts/fixtures_expected.sh"
$PY "$ROOT/scripts/fixtures_report.py"
du -sh "$ROOT/tests/fixtures"
