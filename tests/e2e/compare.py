#!/usr/bin/python3
# Compare every reference output REF_DIR/*.npy (or one REF file) with the same-named file in TEST_DIR (or one TEST file);
# prints rows `model output max_abs mean_abs rel PASS/FAIL` (rel = max|a-b| / max|b|), exit 1 on any FAIL.
import argparse
import os
import sys

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("ref", help="reference .npy dir (onnxruntime) or file")
ap.add_argument("test", help="tested .npy dir (onnxq) or file")
ap.add_argument("--tol", type=float, default=1e-4)
ap.add_argument("--label", default="", help="prefix for the output column")
args = ap.parse_args()

pairs = ([(os.path.splitext(f)[0], os.path.join(args.ref, f), os.path.join(args.test, f))
          for f in sorted(os.listdir(args.ref)) if f.endswith(".npy")]
         if os.path.isdir(args.ref) else [(os.path.basename(args.test)[:-4], args.ref, args.test)])
ok = bool(pairs)
for name, rf, tf in pairs:
    b = np.load(rf)
    status, max_abs, mean_abs, rel = "FAIL", float("nan"), float("nan"), float("nan")
    if not os.path.exists(tf):
        status = "FAIL(missing)"
    else:
        a = np.load(tf)
        if a.shape != b.shape or a.dtype != b.dtype:
            status = f"FAIL(got {a.dtype}{list(a.shape)} want {b.dtype}{list(b.shape)})"
        else:
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            max_abs = float(d.max()) if d.size else 0.0
            mean_abs = float(d.mean()) if d.size else 0.0
            scale = float(np.abs(b.astype(np.float64)).max()) if b.size else 0.0
            rel = max_abs / scale if scale > 0 else max_abs
            status = "PASS" if rel <= args.tol else "FAIL"  # NaN compares False -> FAIL
    ok &= status == "PASS"
    print(f"{args.model:<38} {args.label + name:<22} {max_abs:10.3e} {mean_abs:10.3e} {rel:10.3e}  {status}")
sys.exit(0 if ok else 1)
