#!/usr/bin/python3
# PyTorch 1.13 peer for bench/peers/run.sh: the same architectures as the ONNX files, in float and with PyTorch's
# own int8 quantization — static (fuse, prepare, calibrate on 8 random batches, convert) for the conv nets and the
# CNN, quantize_dynamic on nn.Linear for the BERT-style encoder and the MLP. Engine: onednn (Debian's torch has no
# fbgemm). Prints one JSON line: {"median_ms": ..., "engine": ...}.
# usage: torch_bench.py MODEL float|int8 THREADS WARMUP ITERS
import json
import os
import sys
import time
import warnings

import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def build(name, int8):
    torch.manual_seed(0)
    if name in ("resnet18", "mobilenet_v2"):
        import torchvision.models.quantization as qm
        m = getattr(qm, name)(weights=None, quantize=False).eval()
        x = torch.randn(1, 3, 224, 224)
        if int8:
            m.fuse_model()
            m.qconfig = torch.quantization.get_default_qconfig(torch.backends.quantized.engine)
            torch.quantization.prepare(m, inplace=True)
            with torch.no_grad():
                for _ in range(8):
                    m(torch.randn(1, 3, 224, 224))
            torch.quantization.convert(m, inplace=True)
        return m, x
    if name == "bert_encoder":
        from export_torch import BertEncoder
        m = BertEncoder().eval()
        x = torch.randint(0, 30522, (1, 128))
        return (torch.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8) if int8 else m), x
    if name == "fmnist_mlp":
        from fixtures_fmnist import mlp
        m = mlp().eval()
        x = torch.randn(32, 1, 28, 28)
        return (torch.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8) if int8 else m), x
    if name == "fmnist_cnn":
        from qat_fmnist import QCNN
        m = QCNN().eval()
        x = torch.randn(32, 1, 28, 28)
        if int8:
            torch.quantization.fuse_modules(m, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)
            m.qconfig = torch.quantization.get_default_qconfig(torch.backends.quantized.engine)
            torch.quantization.prepare(m, inplace=True)
            with torch.no_grad():
                for _ in range(8):
                    m(torch.randn(32, 1, 28, 28))
            torch.quantization.convert(m, inplace=True)
        return m, x
    raise SystemExit(f"torch_bench.py: unknown model {name}")


def main():
    name, mode, threads, warmup, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "onednn" if "onednn" in engines else "qnnpack"
    torch.set_num_threads(threads)
    m, x = build(name, mode == "int8")
    times = []
    with torch.no_grad():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            m(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(json.dumps({"median_ms": times[len(times) // 2], "engine": torch.backends.quantized.engine,
                      "fbgemm": "fbgemm" in engines}))


if __name__ == "__main__":
    main()
