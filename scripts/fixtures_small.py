#!/usr/bin/python3
# Build tiny fixture models for the C test suite under tests/fixtures/<name>/: lstm_small (torch, random weights),
# if_subgraph, loop_subgraph, constant_nodes, symbolic_batch, if_quant, loop_quant, dqlstm, dqlstm_u8, if_image,
# dynamic_chains, dynamic_conv_rows, nhwc_chain, nhwc_chain_s8, nhwc_if (onnx.helper). Writes model.onnx, input_N.npy,
# io.txt. Usage: fixtures_small.py [NAME...]   (default: all)
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
rng = np.random.default_rng(0)


def save(name, model, inputs, outputs):
    """inputs: list of (onnx name, array); outputs: list of onnx names. Expected files come from onnxruntime."""
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(model, onnx.ModelProto):
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, os.path.join(d, "model.onnx"))
    lines = []
    for i, (n, a) in enumerate(inputs):
        np.save(os.path.join(d, f"input_{i}.npy"), a)
        lines.append(f"input {n} input_{i}.npy")
    lines += [f"output {n} expected_{i}.npy" for i, n in enumerate(outputs)]
    with open(os.path.join(d, "io.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{name}: {os.path.getsize(os.path.join(d, 'model.onnx'))} bytes")


def mk(nodes, ins, outs, inits=(), opset=13):
    g = h.make_graph(nodes, "g", ins, outs, initializer=list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="onnxq-fixtures")


class TinyLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


def lstm_small():
    torch.manual_seed(0)
    m = TinyLSTM().eval()
    x = torch.randn(2, 5, 4)
    d = os.path.join(FIX, "lstm_small")
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(m, (x,), os.path.join(d, "model.onnx"), opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    save("lstm_small", None, [("input", x.numpy())], ["logits"])


def if_subgraph():
    # y = If(sum(x) > 0) then x * 2 else x - 1   (branches read outer-scope x); also outputs the condition.
    two = h.make_tensor("two", T.FLOAT, [], [2.0])
    then_g = h.make_graph([h.make_node("Constant", [], ["c2"], value=two), h.make_node("Mul", ["x", "c2"], ["t_out"])],
                          "then", [], [h.make_tensor_value_info("t_out", T.FLOAT, [2, 3])])
    else_g = h.make_graph([h.make_node("Constant", [], ["c1"], value_float=1.0), h.make_node("Sub", ["x", "c1"], ["e_out"])],
                          "else", [], [h.make_tensor_value_info("e_out", T.FLOAT, [2, 3])])
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    nodes = [h.make_node("ReduceSum", ["x"], ["s"], keepdims=0), h.make_node("Greater", ["s", "zero"], ["cond"]),
             h.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)]
    m = mk(nodes, [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
           [h.make_tensor_value_info("y", T.FLOAT, [2, 3]), h.make_tensor_value_info("cond", T.BOOL, [])], [zero])
    x = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    x -= x.mean() - 0.25  # positive sum -> then-branch
    save("if_subgraph", m, [("x", x)], ["y", "cond"])
    save("if_subgraph_else", m, [("x", x - 1.0)], ["y", "cond"])  # negative sum -> else-branch


def loop_subgraph():
    # for i in range(n): acc = acc + x (x from outer scope); scan output acc * i ; stop early if i >= 5
    body = h.make_graph(
        [h.make_node("Add", ["acc_in", "x"], ["acc_out"]),
         h.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
         h.make_node("Mul", ["acc_out", "fi"], ["scan"]),
         h.make_node("Constant", [], ["five"], value_int=5),
         h.make_node("Less", ["i", "five"], ["cond_out"])],
        "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("acc_in", T.FLOAT, [3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), h.make_tensor_value_info("acc_out", T.FLOAT, [3]),
         h.make_tensor_value_info("scan", T.FLOAT, [3])])
    inits = [numpy_helper.from_array(np.array(True), "true"), numpy_helper.from_array(np.zeros(3, np.float32), "acc0")]
    nodes = [h.make_node("Loop", ["n", "true", "acc0"], ["acc", "scans"], body=body)]
    m = mk(nodes, [h.make_tensor_value_info("n", T.INT64, []), h.make_tensor_value_info("x", T.FLOAT, [3])],
           [h.make_tensor_value_info("acc", T.FLOAT, [3]), h.make_tensor_value_info("scans", T.FLOAT, ["iters", 3])],
           inits)
    x = rng.uniform(-1, 1, 3).astype(np.float32)
    save("loop_subgraph", m, [("n", np.array(4, np.int64)), ("x", x)], ["acc", "scans"])
    save("loop_subgraph_early_exit", m, [("n", np.array(10, np.int64)), ("x", x)], ["acc", "scans"])


def constant_nodes():
    # y = Relu(Reshape(x, shape) @ W + b) with W, b, shape all coming from Constant nodes (different attribute kinds)
    w = rng.normal(size=(6, 4)).astype(np.float32)
    nodes = [
        h.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w, "W")),
        h.make_node("Constant", [], ["b"], value_floats=rng.normal(size=4).astype(np.float32).tolist()),
        h.make_node("Constant", [], ["shape"], value_ints=[-1, 6]),
        h.make_node("Reshape", ["x", "shape"], ["x2"]),
        h.make_node("MatMul", ["x2", "W"], ["xw"]),
        h.make_node("Add", ["xw", "b"], ["z"]),
        h.make_node("Relu", ["z"], ["y"]),
    ]
    m = mk(nodes, [h.make_tensor_value_info("x", T.FLOAT, [2, 2, 3])], [h.make_tensor_value_info("y", T.FLOAT, [2, 4])])
    save("constant_nodes", m, [("x", rng.normal(size=(2, 2, 3)).astype(np.float32))], ["y"])


def symbolic_batch():
    # probs[N,3] = Softmax(Gemm(x[N,4], W, b)); the batch dim is symbolic "N"; run with N=3
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b")]
    nodes = [h.make_node("Gemm", ["x", "W", "b"], ["z"]), h.make_node("Softmax", ["z"], ["probs"], axis=-1),
             h.make_node("Shape", ["x"], ["x_shape"])]
    m = mk(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
           [h.make_tensor_value_info("probs", T.FLOAT, ["N", 3]), h.make_tensor_value_info("x_shape", T.INT64, [2])],
           inits)
    save("symbolic_batch", m, [("x", rng.normal(size=(3, 4)).astype(np.float32))], ["probs", "x_shape"])


def if_quant():
    # The quantizer inside If branches (tests/cli/test_quant_subgraph.sh): cond selects
    #   then: Relu(Conv(x, Wc, bc)) -> Reshape [1, 256] -> MatMul(Wm) + bm   (Wm is an initializer of the main graph)
    #   else: Reshape(x) [1, 192] -> MatMul(We)
    # calib.npz takes only the then-branch (its ranges), so the else-branch stays float in static mode.
    r = np.random.default_rng(7)  # its own stream: the same files whether built alone or with the others
    wc = numpy_helper.from_array((r.normal(size=(4, 3, 3, 3)) * 0.3).astype(np.float32), "Wc")
    bc = numpy_helper.from_array((r.normal(size=4) * 0.1).astype(np.float32), "bc")
    wm = numpy_helper.from_array((r.normal(size=(256, 5)) * 0.1).astype(np.float32), "Wm")
    bm = numpy_helper.from_array((r.normal(size=5) * 0.1).astype(np.float32), "bm")
    we = numpy_helper.from_array((r.normal(size=(192, 5)) * 0.1).astype(np.float32), "We")
    s256 = numpy_helper.from_array(np.array([1, 256], np.int64), "s256")
    s192 = numpy_helper.from_array(np.array([1, 192], np.int64), "s192")
    then_g = h.make_graph(
        [h.make_node("Conv", ["x", "Wc", "bc"], ["conv"], pads=[1, 1, 1, 1], name="then_conv"),
         h.make_node("Relu", ["conv"], ["relu"], name="then_relu"),
         h.make_node("Reshape", ["relu", "s256"], ["flat"], name="then_reshape"),
         h.make_node("MatMul", ["flat", "Wm"], ["mm"], name="then_matmul"),
         h.make_node("Add", ["mm", "bm"], ["t_out"], name="then_add")],
        "then", [], [h.make_tensor_value_info("t_out", T.FLOAT, [1, 5])], initializer=[wc, bc, bm, s256])
    else_g = h.make_graph(
        [h.make_node("Reshape", ["x", "s192"], ["eflat"], name="else_reshape"),
         h.make_node("MatMul", ["eflat", "We"], ["e_out"], name="else_matmul")],
        "else", [], [h.make_tensor_value_info("e_out", T.FLOAT, [1, 5])], initializer=[we, s192])
    nodes = [h.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g, name="branch")]
    m = mk(nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8]), h.make_tensor_value_info("cond", T.BOOL, [])],
           [h.make_tensor_value_info("y", T.FLOAT, [1, 5])], [wm])
    x = r.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    save("if_quant", m, [("x", x), ("cond", np.array(True))], ["y"])
    cal = r.uniform(-1, 1, (16, 1, 3, 8, 8)).astype(np.float32)
    np.savez(os.path.join(FIX, "if_quant", "calib.npz"), x=cal, cond=np.ones(16, bool))
    np.save(os.path.join(FIX, "if_quant", "cond_false.npy"), np.array(False))  # the else-branch


def loop_quant():
    # The quantizer inside a Loop body: acc = Tanh(acc @ W) for n steps, W an initializer of the main graph. The MatMul
    # reads the body's carried input, whose range calibration records each time the body runs.
    r = np.random.default_rng(8)
    w = numpy_helper.from_array(r.normal(size=(3, 3)).astype(np.float32), "W")
    body = h.make_graph(
        [h.make_node("MatMul", ["acc_in", "W"], ["mm"], name="body_matmul"),
         h.make_node("Tanh", ["mm"], ["acc_out"]), h.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("acc_in", T.FLOAT, [1, 3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), h.make_tensor_value_info("acc_out", T.FLOAT, [1, 3])])
    m = mk([h.make_node("Loop", ["n", "", "x"], ["acc"], body=body, name="loop")],
           [h.make_tensor_value_info("n", T.INT64, []), h.make_tensor_value_info("x", T.FLOAT, [1, 3])],
           [h.make_tensor_value_info("acc", T.FLOAT, [1, 3])], [w])
    save("loop_quant", m, [("n", np.array(4, np.int64)), ("x", r.uniform(-1, 1, (1, 3)).astype(np.float32))], ["acc"])
    np.savez(os.path.join(FIX, "loop_quant", "calib.npz"), n=np.array([3, 4, 5, 2, 4, 3], np.int64),
             x=r.uniform(-1, 1, (6, 1, 3)).astype(np.float32))


def dq_lstm(name, direction, wtype, per_column, peephole):
    """com.microsoft DynamicQuantizeLSTM as onnxruntime's quantizer writes it: W [D,I,4H] and R [D,H,4H] (transposed),
    scales/zero points per direction ([D]) or per gate column ([D,4H]); with bias, initial states, sequence_lens."""
    r = np.random.default_rng(7)
    D, I, H, T_, B = (2 if direction == "bidirectional" else 1), 6, 16, 5, 3

    def quant(w):  # w [D, 4H, K] -> [D, K, 4H] quantized, scale, zero point
        axis = (2,) if per_column else (1, 2)
        if wtype == np.int8:
            s = np.abs(w).max(axis=axis) / 127.0
            z = np.zeros_like(s, np.int8)
            q = np.clip(np.round(w / s.reshape(s.shape + (1,) * len(axis))), -127, 127).astype(np.int8)
        else:
            lo, hi = np.minimum(w.min(axis=axis), 0), np.maximum(w.max(axis=axis), 0)
            s = (hi - lo) / 255.0
            z = np.clip(np.round(-lo / s), 0, 255).astype(np.uint8)
            sh = s.shape + (1,) * len(axis)
            q = np.clip(np.round(w / s.reshape(sh)) + z.reshape(sh), 0, 255).astype(np.uint8)
        return q.transpose(0, 2, 1).copy(), s.astype(np.float32), z

    Wq, Ws, Wz = quant(r.normal(0, 0.4, (D, 4 * H, I)).astype(np.float32))
    Rq, Rs, Rz = quant(r.normal(0, 0.4, (D, 4 * H, H)).astype(np.float32))
    inits = [numpy_helper.from_array(a, n) for a, n in ((Wq, "W"), (Rq, "R"), (Ws, "W_scale"), (Wz, "W_zero_point"),
                                                        (Rs, "R_scale"), (Rz, "R_zero_point"),
                                                        (r.normal(0, 0.2, (D, 8 * H)).astype(np.float32), "B"))]
    ins = ["X", "W", "R", "B", "seq", "h0", "c0", "", "W_scale", "W_zero_point", "R_scale", "R_zero_point"]
    if peephole:
        inits.append(numpy_helper.from_array(r.normal(0, 0.3, (D, 3 * H)).astype(np.float32), "P"))
        ins[7] = "P"
    node = h.make_node("DynamicQuantizeLSTM", ins, ["Y", "Y_h", "Y_c"], domain="com.microsoft", hidden_size=H,
                       direction=direction)
    f = T.FLOAT
    m = h.make_model(h.make_graph([node], "g", [h.make_tensor_value_info("X", f, [T_, B, I]),
                                                h.make_tensor_value_info("seq", T.INT32, [B]),
                                                h.make_tensor_value_info("h0", f, [D, B, H]),
                                                h.make_tensor_value_info("c0", f, [D, B, H])],
                                  [h.make_tensor_value_info(o, f, None) for o in ("Y", "Y_h", "Y_c")], inits),
                     opset_imports=[h.make_opsetid("", 14), h.make_opsetid("com.microsoft", 1)],
                     producer_name="onnxq-fixtures")
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))  # com.microsoft ops: onnx.checker does not know them
    save(name, None, [("X", r.normal(0, 1, (T_, B, I)).astype(np.float32)), ("seq", np.array([5, 3, 4], np.int32)),
                      ("h0", r.normal(0, 0.5, (D, B, H)).astype(np.float32)),
                      ("c0", r.normal(0, 0.5, (D, B, H)).astype(np.float32))], ["Y", "Y_h", "Y_c"])


def if_image():
    """An image input read inside If branches: then Relu(x), else Identity(x) (onnxruntime rejects a body returning an
    outer value directly); cond is
    ReduceMean(x) > 0. Used by the --uint8-input test (tests/unit/test_image.c)."""
    f = T.FLOAT
    then_g = h.make_graph([h.make_node("Relu", ["x"], ["t"])], "then", [], [h.make_tensor_value_info("t", f, None)])
    else_g = h.make_graph([h.make_node("Identity", ["x"], ["e"])], "else", [], [h.make_tensor_value_info("e", f, None)])
    m = mk([h.make_node("ReduceMean", ["x"], ["mean"], keepdims=0),
            h.make_node("Greater", ["mean", "zero"], ["cond"]),
            h.make_node("If", ["cond"], ["b"], then_branch=then_g, else_branch=else_g),
            h.make_node("Mul", ["b", "x"], ["y"])],
           [h.make_tensor_value_info("x", f, [1, 1, 4, 4])], [h.make_tensor_value_info("y", f, [1, 1, 4, 4])],
           [numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    save("if_image", m, [("x", rng.uniform(-1, 1, (1, 1, 4, 4)).astype(np.float32))], ["y"])


def dynamic_chains():
    """onnxruntime's standard-operator dynamic quantization: DynamicQuantizeLinear -> ConvInteger (int8 weights, pads,
    stride 2) -> Cast -> Mul(x_scale * w_scale[M,1,1]) -> Add(bias[M,1,1]) -> Flatten -> DynamicQuantizeLinear ->
    MatMulInteger (uint8 weights, zero point 128) -> Cast -> Mul(x_scale * w_scale[N]) -> Add(bias[N]). onnxq's
    session fuses both chains (passes/fuse_dynamic); the expected outputs are onnxruntime's."""
    r = np.random.default_rng(3)
    f = T.FLOAT
    M, N, K = 8, 5, 8 * 5 * 5
    inits = [numpy_helper.from_array(r.integers(-127, 128, (M, 3, 3, 3)).astype(np.int8), "Wc"),
             numpy_helper.from_array(np.array(0, np.int8), "Wc_zp"),
             numpy_helper.from_array(r.uniform(0.005, 0.02, (M, 1, 1)).astype(np.float32), "Wc_scale"),
             numpy_helper.from_array(r.normal(0, 0.5, (M, 1, 1)).astype(np.float32), "Bc"),
             numpy_helper.from_array(r.integers(0, 256, (K, N)).astype(np.uint8), "Wm"),
             numpy_helper.from_array(np.array(128, np.uint8), "Wm_zp"),
             numpy_helper.from_array(r.uniform(0.001, 0.004, (N,)).astype(np.float32), "Wm_scale"),
             numpy_helper.from_array(r.normal(0, 0.5, (N,)).astype(np.float32), "Bm")]
    nodes = [h.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             h.make_node("ConvInteger", ["xq", "Wc", "xz", "Wc_zp"], ["ci"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Cast", ["ci"], ["cf"], to=T.FLOAT),
             h.make_node("Mul", ["xs", "Wc_scale"], ["cs"]),
             h.make_node("Mul", ["cf", "cs"], ["cm"]),
             h.make_node("Add", ["cm", "Bc"], ["conv"]),
             h.make_node("Flatten", ["conv"], ["flat"]),
             h.make_node("DynamicQuantizeLinear", ["flat"], ["fq", "fs", "fz"]),
             h.make_node("MatMulInteger", ["fq", "Wm", "fz", "Wm_zp"], ["mi"]),
             h.make_node("Cast", ["mi"], ["mf"], to=T.FLOAT),
             h.make_node("Mul", ["fs", "Wm_scale"], ["ms"]),
             h.make_node("Mul", ["mf", "ms"], ["mm"]),
             h.make_node("Add", ["mm", "Bm"], ["y"])]
    m = mk(nodes, [h.make_tensor_value_info("x", f, [2, 3, 10, 10])],
           [h.make_tensor_value_info("conv", f, [2, M, 5, 5]), h.make_tensor_value_info("y", f, [2, N])], inits)
    save("dynamic_chains", m, [("x", r.normal(0, 1, (2, 3, 10, 10)).astype(np.float32))], ["conv", "y"])


def dynamic_conv_rows():
    """DynamicQuantizeLinear -> ConvInteger (128 -> 64 channels, 3x3 on a 7x7 plane, pads 1) -> Cast -> Mul -> Add:
    few pixels and many channels, the shape QLinearConv runs with output pixels as the GEMM rows."""
    r = np.random.default_rng(5)
    f = T.FLOAT
    inits = [numpy_helper.from_array(r.integers(-127, 128, (64, 128, 3, 3)).astype(np.int8), "W"),
             numpy_helper.from_array(np.array(0, np.int8), "W_zp"),
             numpy_helper.from_array(r.uniform(0.0005, 0.002, (64, 1, 1)).astype(np.float32), "W_scale"),
             numpy_helper.from_array(r.normal(0, 0.5, (64, 1, 1)).astype(np.float32), "B")]
    nodes = [h.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             h.make_node("ConvInteger", ["xq", "W", "xz", "W_zp"], ["ci"], pads=[1, 1, 1, 1]),
             h.make_node("Cast", ["ci"], ["cf"], to=T.FLOAT),
             h.make_node("Mul", ["xs", "W_scale"], ["s"]),
             h.make_node("Mul", ["cf", "s"], ["m"]),
             h.make_node("Add", ["m", "B"], ["y"])]
    m = mk(nodes, [h.make_tensor_value_info("x", f, [1, 128, 7, 7])], [h.make_tensor_value_info("y", f, [1, 64, 7, 7])],
           inits)
    save("dynamic_conv_rows", m, [("x", r.normal(0, 1, (1, 128, 7, 7)).astype(np.float32))], ["y"])


def nhwc_chain(name="nhwc_chain", act=np.uint8):
    """QOperator chain that onnxq's session runs channels-last (passes/layout_nhwc.c): QuantizeLinear ->
    QLinearConv 3->16 3x3 stride 2 (the chain's first, NCHW in) -> MaxPool 3x3/2 -> QLinearConv 3x3 -> QLinearConv
    1x1 (+Relu range) -> QLinearAdd (residual) -> QLinearConv 1x1 stride 2 (to 40 channels) -> depthwise 3x3,
    depthwise 3x3 stride 2, depthwise 5x5 with weight zero points -> QLinearConv 3x3 dilation 2 -> QLinearConv 3x3
    asymmetric pads -> QLinearMul by a scalar -> QLinearGlobalAveragePool; outputs `mid` (read in NCHW from inside
    the chain) and `y`. Per-channel int8 weights, int32 bias; `act` is the activation type."""
    r = np.random.default_rng(11 if act == np.uint8 else 12)
    f = T.FLOAT
    zp = (lambda v: np.array(v, act))
    z0 = 128 if act == np.uint8 else 0
    inits, nodes = [], []

    def add(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    add("s_x", np.array(0.02, np.float32)); add("z_x", zp(z0 - 10 if act == np.uint8 else -10))
    nodes.append(h.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"]))
    state = {"k": 0}

    def conv(x, xs, xz, cin, cout, k, out_scale, out_zp, group=1, wzp=0, **attrs):
        i = state["k"] = state["k"] + 1
        w = r.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
        ws = (r.uniform(0.5, 1.5, cout) / (np.sqrt(cin // group * k * k) * 60)).astype(np.float32)
        b = r.integers(-2000, 2000, cout).astype(np.int32)
        wz = np.array([wzp * (1 if j % 2 else -1) for j in range(cout)], np.int8)
        add(f"w{i}", w); add(f"ws{i}", ws); add(f"wz{i}", wz); add(f"b{i}", b)
        if group > 1:
            attrs["group"] = group
        add(f"ys{i}", np.array(out_scale, np.float32)); add(f"yz{i}", zp(out_zp))
        nodes.append(h.make_node("QLinearConv", [x, xs, xz, f"w{i}", f"ws{i}", f"wz{i}", f"ys{i}", f"yz{i}", f"b{i}"],
                                 [f"c{i}"], **attrs))
        return f"c{i}", f"ys{i}", f"yz{i}"

    c1 = conv("xq", "s_x", "z_x", 3, 16, 3, 0.03, z0, strides=[2, 2], pads=[1, 1, 1, 1])
    nodes.append(h.make_node("MaxPool", [c1[0]], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    c2 = conv("mp", c1[1], c1[2], 16, 16, 3, 0.03, z0 + 5, pads=[1, 1, 1, 1])
    c3 = conv(c2[0], c2[1], c2[2], 16, 16, 1, 0.02, z0 - 128 if act == np.uint8 else -128)  # Relu-like range
    add("s_a", np.array(0.04, np.float32)); add("z_a", zp(z0))
    nodes.append(h.make_node("QLinearAdd", ["mp", c1[1], c1[2], c3[0], c3[1], c3[2], "s_a", "z_a"], ["res"],
                             domain="com.microsoft"))
    c4 = conv("res", "s_a", "z_a", 16, 40, 1, 0.03, z0, strides=[2, 2])
    d1 = conv(c4[0], c4[1], c4[2], 40, 40, 3, 0.03, z0 + 2, group=40, pads=[1, 1, 1, 1])
    d2 = conv(d1[0], d1[1], d1[2], 40, 40, 3, 0.03, z0 - 2, group=40, strides=[2, 2], pads=[1, 1, 1, 1])
    d3 = conv(d2[0], d2[1], d2[2], 40, 40, 5, 0.03, z0, group=40, wzp=20, pads=[2, 2, 2, 2])
    c5 = conv(d3[0], d3[1], d3[2], 40, 32, 3, 0.03, z0 + 3, pads=[2, 2, 2, 2], dilations=[2, 2])
    c6 = conv(c5[0], c5[1], c5[2], 32, 24, 3, 0.03, z0 - 4, pads=[0, 1, 1, 0])
    add("k", zp(z0 + 60)); add("s_k", np.array(0.01, np.float32)); add("z_k", zp(z0))
    add("s_m", np.array(0.02, np.float32)); add("z_m", zp(z0))
    nodes.append(h.make_node("QLinearMul", [c6[0], c6[1], c6[2], "k", "s_k", "z_k", "s_m", "z_m"], ["mul"],
                             domain="com.microsoft"))
    add("s_g", np.array(0.005, np.float32)); add("z_g", zp(z0))
    nodes.append(h.make_node("QLinearGlobalAveragePool", ["mul", "s_m", "z_m", "s_g", "z_g"], ["gap"],
                             domain="com.microsoft", channels_last=0))
    nodes.append(h.make_node("DequantizeLinear", ["gap", "s_g", "z_g"], ["y"]))
    nodes.append(h.make_node("DequantizeLinear", [c2[0], c2[1], c2[2]], ["mid"]))
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [1, 3, 32, 32])],
                     [h.make_tensor_value_info("y", f, [1, 24, 1, 1]), h.make_tensor_value_info("mid", f, [1, 16, 8, 8])],
                     initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13), h.make_opsetid("com.microsoft", 1)],
                     producer_name="onnxq-fixtures")
    save(name, m, [("x", r.normal(0, 1, (1, 3, 32, 32)).astype(np.float32))], ["y", "mid"])


def nhwc_chain_s8():
    nhwc_chain("nhwc_chain_s8", np.int8)


def nhwc_if():
    """nhwc_chain with an If whose branches read `c3`, a value inside the channels-last chain (consumed there by
    the QLinearAdd), from the outer scope: the session must hand the branch c3 in NCHW. Input `cond` false (the
    else branch negates it)."""
    nhwc_chain()
    m = onnx.load(os.path.join(FIX, "nhwc_chain", "model.onnx"))
    g = m.graph
    f = T.FLOAT
    then = h.make_graph([h.make_node("DequantizeLinear", ["c3", "ys3", "yz3"], ["t_out"])], "then", [],
                        [h.make_tensor_value_info("t_out", f, [1, 16, 8, 8])])
    els = h.make_graph([h.make_node("DequantizeLinear", ["c3", "ys3", "yz3"], ["e_dq"]),
                        h.make_node("Neg", ["e_dq"], ["e_out"])], "else", [],
                       [h.make_tensor_value_info("e_out", f, [1, 16, 8, 8])])
    g.input.append(h.make_tensor_value_info("cond", T.BOOL, []))
    g.node.append(h.make_node("If", ["cond"], ["if_out"], then_branch=then, else_branch=els))
    g.output.append(h.make_tensor_value_info("if_out", f, [1, 16, 8, 8]))
    x = np.load(os.path.join(FIX, "nhwc_chain", "input_0.npy"))
    save("nhwc_if", m, [("x", x), ("cond", np.array(False))], ["y", "mid", "if_out"])


def dqlstm():
    dq_lstm("dqlstm", "bidirectional", np.int8, True, False)


def dqlstm_u8():
    dq_lstm("dqlstm_u8", "reverse", np.uint8, False, True)


FIXTURES = {f.__name__: f for f in (lstm_small, if_subgraph, loop_subgraph, constant_nodes, symbolic_batch, if_quant,
                                    loop_quant, dqlstm, dqlstm_u8, if_image, dynamic_chains, dynamic_conv_rows,
                                    nhwc_chain, nhwc_chain_s8, nhwc_if)}

if __name__ == "__main__":
    for name in sys.argv[1:] or FIXTURES:
        FIXTURES[name]()
