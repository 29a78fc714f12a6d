#!/usr/bin/env python3
"""Builds an ONNX graph of all-MiniLM-L6-v2 (BERT, 6 layers, 384 hidden, 12 heads) from the
model.safetensors that bootstrap installs, with mean pooling over the attention mask and L2
normalisation in the graph, so ONNX Runtime returns sentence-transformers embeddings.

The graph is written operator by operator with onnx.helper (no PyTorch needed): embeddings
(word + position + token type 0) and LayerNorm, then per layer self-attention with the
additive mask, output projection, residual and LayerNorm, the GELU (erf) feed-forward,
residual and LayerNorm.

Usage: minilm_onnx.py MODEL_DIR OUT.onnx
"""

import json
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, HEADS, LAYERS = 384, 12, 6
HEAD_DIM = HIDDEN // HEADS
EPS = 1e-12


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (F32 only)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            continue  # buffers such as position_ids are not weights
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=np.float32).reshape(meta["shape"])
    return out


def build(weights):
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    w = lambda name: weights[prefix + name]  # noqa: E731
    inits, nodes = [], []
    counter = [0]

    def const(array, name=None):
        counter[0] += 1
        name = name or f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, base):
        # y = x W^T + b, with W stored [out, in].
        wt = const(w(base + ".weight").T.copy())
        return node("Add", [node("MatMul", [x, wt]), const(w(base + ".bias"))])

    def layer_norm(x, base):
        return node(
            "LayerNormalization",
            [x, const(w(base + ".weight")), const(w(base + ".bias"))],
            axis=-1,
            epsilon=EPS,
        )

    # Embeddings.
    seq = node("Gather", [node("Shape", ["input_ids"]), const(np.array(1, dtype=np.int64))])
    positions = node(
        "Range", [const(np.array(0, dtype=np.int64)), seq, const(np.array(1, dtype=np.int64))]
    )
    words = node("Gather", [const(w("embeddings.word_embeddings.weight")), "input_ids"])
    pos = node("Gather", [const(w("embeddings.position_embeddings.weight")), positions])
    typ = const(w("embeddings.token_type_embeddings.weight")[0])
    x = node("Add", [node("Add", [words, pos]), typ])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive attention mask [B, 1, 1, S]: 0 where attended, a large negative elsewhere.
    mask_f = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # Unsqueezed one axis at a time and scores divided by sqrt(d) (not multiplied by its
    # inverse): the shapes ONNX Runtime's transformer optimizer recognises, so that
    # minilm_variants.py can fuse attention (the same arithmetic either way).
    mask4 = node(
        "Unsqueeze",
        [node("Unsqueeze", [mask_f, const(np.array([1], dtype=np.int64))]), const(np.array([2], dtype=np.int64))],
    )
    additive = node(
        "Mul",
        [node("Sub", [const(np.array(1.0, dtype=np.float32)), mask4]),
         const(np.array(-1e9, dtype=np.float32))],
    )
    heads_shape = const(np.array([0, 0, HEADS, HEAD_DIM], dtype=np.int64))
    merge_shape = const(np.array([0, 0, HIDDEN], dtype=np.int64))
    scale = const(np.array(np.sqrt(HEAD_DIM), dtype=np.float32))
    sqrt2 = const(np.array(np.sqrt(2.0), dtype=np.float32))
    half = const(np.array(0.5, dtype=np.float32))
    one = const(np.array(1.0, dtype=np.float32))

    for i in range(LAYERS):
        base = f"encoder.layer.{i}"
        q = node("Transpose", [node("Reshape", [linear(x, base + ".attention.self.query"), heads_shape])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, base + ".attention.self.key"), heads_shape])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, base + ".attention.self.value"), heads_shape])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Div", [node("MatMul", [q, k]), scale]), additive])
        probs = node("Softmax", [scores], axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        attn = linear(ctx, base + ".attention.output.dense")
        x = layer_norm(node("Add", [attn, x]), base + ".attention.output.LayerNorm")
        h = linear(x, base + ".intermediate.dense")
        gelu = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Div", [h, sqrt2])]), one])])
        out = linear(gelu, base + ".output.dense")
        x = layer_norm(node("Add", [out, x]), base + ".output.LayerNorm")

    # Mean pooling over the mask, then L2 normalisation.
    mask3 = node("Unsqueeze", [mask_f, const(np.array([2], dtype=np.int64))])
    summed = node("ReduceSum", [node("Mul", [x, mask3]), const(np.array([1], dtype=np.int64))], keepdims=0)
    count = node("ReduceSum", [mask3, const(np.array([1], dtype=np.int64))], keepdims=0)
    mean = node("Div", [summed, node("Max", [count, const(np.array(1e-9, dtype=np.float32))])])
    norm = node("Sqrt", [node("ReduceSum", [node("Mul", [mean, mean]), const(np.array([1], dtype=np.int64))], keepdims=1)])
    nodes.append(
        helper.make_node(
            "Div", [mean, node("Max", [norm, const(np.array(1e-12, dtype=np.float32))])], ["sentence_embedding"]
        )
    )
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    model = build(read_safetensors(f"{model_dir}/model.safetensors"))
    onnx.save(model, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
