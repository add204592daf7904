#!/usr/bin/python3
# Export random-weight PyTorch models (resnet18, mobilenet_v2, BERT-style encoder, MLP, CNN, LSTM) to ONNX opset 13
# with a dynamic "batch" axis into .cache/models/, plus NAME.torch_in.npy / NAME.torch_out.npy reference I/O.
import argparse
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BertEncoder(nn.Module):
    """BERT-base-like encoder truncated to 4 layers, QA head -> logits [batch, seq, 2]."""

    def __init__(self, vocab=30522, seq=128, hidden=768, heads=12, ffn=3072, layers=4):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Parameter(torch.randn(1, seq, hidden) * 0.02)
        self.ln0 = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            qkv=nn.Linear(hidden, 3 * hidden), proj=nn.Linear(hidden, hidden), ln1=nn.LayerNorm(hidden),
            fc1=nn.Linear(hidden, ffn), fc2=nn.Linear(ffn, hidden), ln2=nn.LayerNorm(hidden))) for _ in range(layers))
        self.qa = nn.Linear(hidden, 2)

    def forward(self, input_ids):
        s, hid = self.pos.shape[1], self.pos.shape[2]  # python ints: fixed seq, only the batch dim is dynamic
        x = self.ln0(self.tok(input_ids) + self.pos)
        d = hid // self.heads
        for L in self.layers:
            q, k, v = L.qkv(x).reshape(-1, s, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            x = L.ln1(x + L.proj((att @ v).transpose(1, 2).reshape(-1, s, hid)))
            x = L.ln2(x + L.fc2(nn.functional.gelu(L.fc1(x))))
        return self.qa(x)


class LSTMClassifier(nn.Module):
    def __init__(self, feat=32, hidden=64, classes=10):
        super().__init__()
        self.lstm = nn.LSTM(feat, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 14 * 14, 10))


def randomize_bn(model):
    """Default BN stats are the identity; give them random values so they matter."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def models():
    import torchvision
    # name -> (constructor, input name, example input maker, output name)
    return {
        "resnet18": (lambda: torchvision.models.resnet18(), "input", lambda b: torch.randn(b, 3, 224, 224), "output"),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), "input", lambda b: torch.randn(b, 3, 224, 224), "output"),
        "bert_encoder": (BertEncoder, "input_ids", lambda b: torch.randint(0, 100, (b, 128)), "logits"),
        "mlp": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                      nn.Linear(128, 10)), "input", lambda b: torch.randn(b, 1, 28, 28), "output"),
        "cnn": (small_cnn, "input", lambda b: torch.randn(b, 1, 28, 28), "output"),
        "lstm": (LSTMClassifier, "input", lambda b: torch.randn(b, 20, 32), "output"),
    }


KEEP_BN = {"cnn"}


def fix_output_dims(path, shape):
    """torch may leave non-batch output dims symbolic (e.g. "Addlogits_dim_1"); pin them to the traced sizes."""
    import onnx
    m = onnx.load(path)
    dims = m.graph.output[0].type.tensor_type.shape.dim
    if any(d.dim_param for d in dims[1:]):
        for d, n in zip(dims[1:], shape[1:]):
            d.Clear()
            d.dim_value = n
        onnx.save(m, path)


def export(name, ctor, in_name, make_input, out_name, out_dir, batch=2):
    torch.manual_seed(0)
    model = ctor().eval()
    randomize_bn(model)
    x = make_input(batch)
    with torch.no_grad():
        y = model(x)
        path = os.path.join(out_dir, name + ".onnx")
        torch.onnx.export(model, (x,), path, opset_version=13, input_names=[in_name], output_names=[out_name],
                          dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                          # PRESERVE keeps BatchNormalization nodes (EVAL would fold them into Conv)
                          training=torch.onnx.TrainingMode.PRESERVE if name in KEEP_BN else torch.onnx.TrainingMode.EVAL)
    fix_output_dims(path, y.shape)
    np.save(os.path.join(out_dir, name + ".torch_in.npy"), x.numpy())
    np.save(os.path.join(out_dir, name + ".torch_out.npy"), y.numpy())
    print(f"exported {path}: {in_name}{list(x.shape)} -> {out_name}{list(y.shape)} "
          f"({os.path.getsize(path) / 1e6:.1f} MB)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", help="subset of models (default: all)")
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache", "models"))
    ap.add_argument("--force", action="store_true", help="re-export even if present")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    table = models()
    for name in args.names or table:
        if name not in table:
            sys.exit(f"unknown model {name}; known: {' '.join(table)}")
        done = all(os.path.exists(os.path.join(args.out, name + s)) for s in (".onnx", ".torch_in.npy", ".torch_out.npy"))
        if done and not args.force:
            print(f"{name}: present, skipping")
            continue
        export(name, *table[name], args.out)


if __name__ == "__main__":
    main()
