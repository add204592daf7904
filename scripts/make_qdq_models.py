#!/usr/bin/python3
# Statically quantized QDQ test models: PyTorch 1.13 eager-mode post-training quantization (qnnpack engine,
# random-data calibration), exported to ONNX opset 13 as .cache/models/NAME_qdq.onnx, plus NAME_qdq.in.npy.
# Models: a small CNN (conv-relu-pool-linear), torchvision's quantizable resnet18 and mobilenet_v2.
# Weights are per-channel int8 (onednn engine); NAME_pt variants (e.g. cnn_pt) are per-tensor (qnnpack engine).
# BatchNorm statistics are first measured on random data so that activations keep a realistic range.
import argparse
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".cache", "models")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = torch.quantization.QuantStub()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.relu2 = nn.ReLU()
        self.skip = nn.Conv2d(16, 32, 1, stride=2)  # residual branch: exercises QLinearAdd
        self.add = nn.quantized.FloatFunctional()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(32, 10)
        self.dequant = torch.quantization.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.conv1(x))
        x = self.pool(self.add.add(self.relu2(self.conv2(x)), self.skip(x)))
        x = self.fc(self.flat(self.avg(x)))
        return self.dequant(x)

    def fuse_model(self):
        torch.quantization.fuse_modules(self, [["conv1", "relu1"], ["conv2", "relu2"]], inplace=True)


def build(name):
    import torchvision.models.quantization as tq
    if name == "cnn":
        return SmallCNN(), (1, 3, 32, 32)
    if name == "resnet18":
        return tq.resnet18(weights=None, quantize=False), (1, 3, 224, 224)
    if name == "mobilenet_v2":
        return tq.mobilenet_v2(weights=None, quantize=False), (1, 3, 224, 224)
    raise ValueError(name)


def settle_batchnorm(model, shape):
    """Random init leaves activations shrinking layer after layer (mobilenet_v2's output is ~1e-9); BN statistics
    measured on random data keep every layer at unit scale, as a trained model would be."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, *shape[1:]))
    model.eval()


def torch_qdq(name, path, seed, engine):
    torch.manual_seed(seed)
    base = name[:-3] if name.endswith("_pt") else name
    model, shape = build(base)
    settle_batchnorm(model, shape)
    model.fuse_model()
    # onednn: per-channel symmetric int8 weights; qnnpack: per-tensor (the "_pt" variants)
    torch.backends.quantized.engine = engine
    model.qconfig = torch.quantization.get_default_qconfig(engine)
    torch.quantization.prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(8):
            model(torch.randn(*shape))
    torch.quantization.convert(model, inplace=True)
    x = torch.randn(*shape)
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"])
    return shape


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["cnn", "cnn_pt", "resnet18", "mobilenet_v2", "mobilenet_v2_pt"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixture", action="store_true",
                    help="also copy cnn_qdq.onnx to tests/fixtures/qdq_cnn.onnx (the pass unit test's model)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rc = 0
    for name in args.models:
        path = os.path.join(OUT, f"{name}_qdq.onnx")
        try:
            shape = torch_qdq(name, path, args.seed, "qnnpack" if name.endswith("_pt") else "onednn")
        except Exception as e:  # report exactly how the export failed
            print(f"{name}: torch QDQ export failed: {type(e).__name__}: {e}", file=sys.stderr)
            rc = 1
            continue
        rng = np.random.default_rng(args.seed)
        np.save(os.path.join(OUT, f"{name}_qdq.in.npy"), rng.standard_normal(shape).astype(np.float32))
        print(f"{name}: {path} ({os.path.getsize(path)} bytes)")
        if args.fixture and name == "cnn":
            import shutil
            os.makedirs(os.path.join(ROOT, "tests", "fixtures"), exist_ok=True)
            shutil.copyfile(path, os.path.join(ROOT, "tests", "fixtures", "qdq_cnn.onnx"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
