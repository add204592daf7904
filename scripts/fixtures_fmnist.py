#!/usr/bin/python3
# Train a small MLP and CNN on Debian's Fashion-MNIST (dataset-fashion-mnist) and export them (opset 13, dynamic
# batch) as tests/fixtures/fmnist_{mlp,cnn}/model.onnx + first 8 test images; also writes the 1000-image test subset.
import gzip
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train-set pixel mean/std (pixels scaled to [0,1])


def load_idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def normalize(u8):
    return ((u8.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)[:, None, :, :]


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def train(model, x, y, epochs, lr):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((len(x) + 63) // 64))
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"  epoch {ep + 1}: last loss {loss.item():.3f}", flush=True)
    return model.eval()


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    xtr, ytr = torch.from_numpy(normalize(load_idx("train-images-idx3-ubyte.gz"))), \
        torch.from_numpy(load_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xte_np = normalize(load_idx("t10k-images-idx3-ubyte.gz"))
    yte_np = load_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    xte, yte = torch.from_numpy(xte_np), torch.from_numpy(yte_np)

    os.makedirs(FIX, exist_ok=True)
    np.save(os.path.join(FIX, "fmnist_test_1000_x.npy"), xte_np[:1000])
    np.save(os.path.join(FIX, "fmnist_test_1000_y.npy"), yte_np[:1000])
    # full test set for the accuracy check with onnxruntime (not committed)
    os.makedirs(os.path.join(ROOT, ".cache"), exist_ok=True)
    np.save(os.path.join(ROOT, ".cache", "fmnist_test_x.npy"), xte_np)
    np.save(os.path.join(ROOT, ".cache", "fmnist_test_y.npy"), yte_np)

    acc = {}
    for name, ctor, epochs, lr in (("fmnist_mlp", mlp, 2, 3e-3), ("fmnist_cnn", cnn, 2, 5e-3)):
        torch.manual_seed(1)
        t0 = time.time()
        print(f"training {name}", flush=True)
        model = train(ctor(), xtr, ytr, epochs, lr)
        acc[name] = {"torch_test_10k": accuracy(model, xte, yte), "torch_test_1000": accuracy(model, xte[:1000], yte[:1000]),
                     "epochs": epochs, "train_seconds": round(time.time() - t0, 1)}
        print(f"  {name}: {acc[name]}", flush=True)
        d = os.path.join(FIX, name)
        os.makedirs(d, exist_ok=True)
        with torch.no_grad():
            # PRESERVE keeps the BatchNormalization nodes instead of folding them into Conv
            torch.onnx.export(model, (xte[:8],), os.path.join(d, "model.onnx"), opset_version=13,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              training=torch.onnx.TrainingMode.PRESERVE)
        np.save(os.path.join(d, "input_0.npy"), xte_np[:8])
        with open(os.path.join(d, "io.txt"), "w") as f:
            f.write("input input input_0.npy\noutput logits expected_0.npy\n")
    with open(os.path.join(ROOT, ".cache", "fmnist_accuracy.json"), "w") as f:
        json.dump(acc, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
