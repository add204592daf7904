#!/usr/bin/python3
"""Seed corpus of fuzz/fuzz_data.c: small valid files of each kind it parses, each
behind the byte that picks the parser (case + 8 * options, see the enum there).
Usage: scripts/fuzz_data_seeds.py OUT_DIR   (needs numpy; PIL for the JPEG seeds)"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np

NPY, NPZ_READER, NPY_READER, CALIB_TABLE, RULES, IMAGE, IMAGE_SPEC, RESCALED = range(8)
# options (the first byte's upper part): reader bit 3 = fmnist_cnn model, image bit 3 = folder
IMG_MODEL = 8
FOLDER = 8

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1)


def seed(name, case, opt, payload):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([case + 8 * opt]) + payload)


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def npz_bytes(compressed=False, **arrays):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


# .npy: dtypes, byte orders, memory orders, format versions, shapes
seed("npy_f4", NPY, 0, npy_bytes(rng.standard_normal((3, 4)).astype("<f4")))
seed("npy_f8_big", NPY, 0, npy_bytes(rng.standard_normal((2, 3)).astype(">f8")))
seed("npy_i64_fortran", NPY, 0, npy_bytes(np.asfortranarray(np.arange(12, dtype="<i8").reshape(3, 4))))
seed("npy_u1_v2", NPY, 0, npy_bytes(np.arange(6, dtype="u1").reshape(1, 2, 3), version=(2, 0)))
seed("npy_bool_scalar", NPY, 0, npy_bytes(np.array(True)))
seed("npy_f2_empty", NPY, 0, npy_bytes(np.zeros((0, 5), dtype="<f2")))
seed("npy_c8", NPY, 0, npy_bytes(np.array([1 + 2j, 3 - 1j], dtype="<c8")))
seed("npy_i2_v3", NPY, 0, npy_bytes(np.arange(4, dtype=">i2"), version=(3, 0)))

# calibration data: symbolic_batch's input x [N,4] and fmnist_cnn's input [batch,1,28,28]
x = rng.standard_normal((5, 4)).astype("<f4")
img = rng.random((3, 1, 28, 28)).astype("<f4")
seed("npz_x", NPZ_READER, 0, npz_bytes(x=x))
seed("npz_x_compressed_b3", NPZ_READER, 2, npz_bytes(compressed=True, x=x))
seed("npz_x_extra_b1_max", NPZ_READER, 1 | 4, npz_bytes(x=x, y=np.arange(5)))
seed("npz_x_f8", NPZ_READER, 3, npz_bytes(x=x.astype("<f8")))
seed("npz_img", NPZ_READER, IMG_MODEL, npz_bytes(input=img))
seed("npz_img_nhw_b7", NPZ_READER, IMG_MODEL | 3, npz_bytes(input=img[:, 0]))
seed("npyr_x", NPY_READER, 0, npy_bytes(x))
seed("npyr_x_b3", NPY_READER, 2, npy_bytes(x.astype(">f4")))
seed("npyr_img", NPY_READER, IMG_MODEL | 1, npy_bytes(img[:2]))

# calibration range tables, as oq_calib_table_save writes them
table = {"method": "minmax", "samples": 32, "tensors": {
    "x": {"min": -1.5, "max": 2.25, "seen_min": -1.5, "seen_max": 2.25},
    "conv1_out": {"min": 0, "max": 6.0},
    "y\u00e9\\\"": {"min": -1e-3, "max": 1e3}}}
seed("table", CALIB_TABLE, 0, json.dumps(table, indent=1).encode())
seed("table_min", CALIB_TABLE, 0, b'{"tensors":{"a":{"min":-1,"max":1}}}')

# per-node rules files
rules = {"global": {"per_channel": True, "reduce_range": False},
         "op_types": {"Gemm": {"per_channel": False}, "Conv": {"quantize": True}},
         "nodes": {"layer4.*": {"quantize": False}, "conv?": {"per_channel": False, "reduce_range": True}},
         "exclude": ["classifier", "*.downsample.*, fc"]}
seed("rules", RULES, 0, json.dumps(rules, indent=2).encode())
seed("rules_dynamic", RULES, 1, b'{"exclude": ["*"], "global": {"quantize": 0}}')


def png_bytes(w, h, color_type, bit_depth=8, rows=None, extra=b""):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    comps = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    rowbytes = (w * comps * bit_depth + 7) // 8
    raw = b"".join(b"\x00" + bytes((x * 37 + y * 11) & 0xff for x in range(rowbytes)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)) +
            extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def plte():
    d = bytes(range(48))
    return struct.pack(">I", len(d)) + b"PLTE" + d + struct.pack(">I", zlib.crc32(b"PLTE" + d) & 0xffffffff)


seed("png_gray", IMAGE, 0, png_bytes(6, 5, 0))
seed("png_rgb", IMAGE, 1, png_bytes(9, 4, 2))
seed("png_rgba16", IMAGE, 1 | 2, png_bytes(3, 3, 6, 16))
seed("png_palette", IMAGE, 1 | 4, png_bytes(4, 4, 3, 4, extra=plte()))
seed("png_graya_folder", IMAGE, FOLDER, png_bytes(30, 28, 4))
seed("png_gray_folder_spec", IMAGE, FOLDER | 2, png_bytes(28, 28, 0))
try:
    from PIL import Image
    for name, mode, opt in (("jpeg_gray", "L", 0), ("jpeg_rgb", "RGB", 1), ("jpeg_rgb_folder", "RGB", FOLDER | 1),
                            ("jpeg_gray_folder", "L", FOLDER)):
        im = Image.new(mode, (11, 7))
        im.putdata([((x * 23 + y * 7) & 0xff,) * len(mode) if mode != "L" else (x * 23 + y * 7) & 0xff
                    for y in range(7) for x in range(11)])
        b = io.BytesIO()
        im.save(b, "JPEG", quality=80, progressive=name == "jpeg_rgb")
        seed(name, IMAGE, opt, b.getvalue())
except ImportError:
    print("fuzz_data_seeds.py: no PIL, no JPEG seeds", file=sys.stderr)

# image preprocessing specs
for i, spec in enumerate(["resize=256,crop=224,order=rgb,layout=nchw,scale=255,mean=0.485:0.456:0.406,"
                          "std=0.229:0.224:0.225", "crop=32x48,order=bgr,layout=nhwc", "mean=0.5,std=0.25,scale=1"]):
    seed(f"spec_{i}", IMAGE_SPEC, 0, spec.encode())


# onnxq.rescaled.N records: "axis A\ndivisor BASE64(bf16 high halves)\nTO\tFROM..."
def rescaled(axis, divisors, pairs):
    import base64
    hi = b"".join(struct.pack("<f", d)[2:] for d in divisors)
    return (f"axis {axis}\ndivisor ".encode() + base64.b64encode(hi) +
            b"".join(b"\n" + t.encode() + b"\t" + f.encode() for t, f in pairs))


seed("rescaled_1", RESCALED, 0, rescaled(1, [0.5, 2.0, 1.25], [("x_eq", "x"), ("y_eq", "y")]))
seed("rescaled_2", RESCALED, 0, rescaled(0, [3.0], [("a.b", "c/d")]))
