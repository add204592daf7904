#!/usr/bin/python3
# Quantization-aware training of the Fashion-MNIST CNN (the fixture's architecture, scripts/fixtures_fmnist.py)
# with PyTorch 1.13: train in float, fuse conv+bn+relu, prepare_qat (fake quantization), fine-tune, convert to a
# quantized model and export it to ONNX (QDQ, opset 13). Writes OUT_DIR/cnn_qat.onnx, OUT_DIR/cnn_float.onnx and
# OUT_DIR/test_x.npy / test_y.npy (the full 10,000-image test set), and prints torch's own top-1 of both.
# usage: scripts/qat_fmnist.py OUT_DIR [--float-epochs N] [--qat-epochs N]
import argparse
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_fmnist import load_idx, normalize, train, accuracy  # noqa: E402

warnings.filterwarnings("ignore")


class QCNN(nn.Module):
    """conv(1->8)-BN-relu-pool-conv(8->16)-BN-relu-pool-linear, with quant/dequant stubs."""

    def __init__(self):
        super().__init__()
        self.quant = torch.quantization.QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 7 * 7, 10)
        self.dequant = torch.quantization.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.dequant(self.fc(self.flatten(x)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--float-epochs", type=int, default=2)
    ap.add_argument("--qat-epochs", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    xtr = torch.from_numpy(normalize(load_idx("train-images-idx3-ubyte.gz")))
    ytr = torch.from_numpy(load_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xte_np = normalize(load_idx("t10k-images-idx3-ubyte.gz"))
    yte_np = load_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    np.save(os.path.join(a.out, "test_x.npy"), xte_np)
    np.save(os.path.join(a.out, "test_y.npy"), yte_np)
    xte, yte = torch.from_numpy(xte_np), torch.from_numpy(yte_np)

    print(f"float training, {a.float_epochs} epochs", flush=True)
    model = train(QCNN(), xtr, ytr, a.float_epochs, 3e-3)
    acc_float = accuracy(model, xte, yte)
    torch.onnx.export(model, xte[:1], os.path.join(a.out, "cnn_float.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    engine = "onednn" if "onednn" in torch.backends.quantized.supported_engines else "qnnpack"
    torch.backends.quantized.engine = engine
    model.train()
    torch.ao.quantization.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)
    model.qconfig = torch.quantization.get_default_qat_qconfig(engine)
    torch.quantization.prepare_qat(model, inplace=True)
    print(f"QAT fine-tuning ({engine} qconfig), {a.qat_epochs} epoch(s)", flush=True)
    model = train(model, xtr, ytr, a.qat_epochs, 5e-4)
    model.eval()
    qmodel = torch.quantization.convert(model, inplace=False)
    acc_qat = accuracy(qmodel, xte, yte)
    torch.onnx.export(qmodel, xte[:1], os.path.join(a.out, "cnn_qat.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"])
    print(f"torch top-1: float {acc_float:.4f}, QAT int8 ({engine}) {acc_qat:.4f}")


if __name__ == "__main__":
    main()
