"""Writes a SAM-family model's fast CPU decoder next to its float one; names it in model.json.

    .venv/bin/python training/optimize_decoder.py models/litemedsam models/litemedsam-photo

Runs in the app's venv with the dev extra (it needs the ``onnx`` package; onnxruntime's own
quantizer does the int8 part). Deterministic: the same float decoder gives the same file,
``decoder.int8.onnx``, named ``decoder_int8`` in model.json. Three steps:

0. **Constants stay constant** (exact). The dense positional encoding is a constant, but the
   export repeats it once per prompt set (``repeat_interleave`` by the batch of point_coords,
   which is 1) with a Tile whose repeats come from the prompts, so onnxruntime cannot fold it:
   every decode copied and transposed 4 MB of it. Without the Tile it is folded when the
   session loads. And where the graph computes SAM's four masks but outputs only the first
   (LiteMedSAM's export slices ``masks[:, 0:1]``), the last product and its reordering are
   done for that mask only. 2.8 ms a decode less (LiteMedSAM, one thread, 300 decodes each
   interleaved: 43.9 against 46.8 ms); the logits are bit for bit the same.
1. **Output upscaling on rows** (exact). SAM's decoder upsamples the image tokens with two
   ConvTranspose (kernel 2, stride 2) separated by a channel LayerNorm2d and GELU, in NCHW,
   then takes the product with the mask tokens' hypernetwork outputs. A kernel-2 stride-2
   ConvTranspose is one matrix product per input pixel, so the same arithmetic runs on
   channels-last rows: two MatMuls, a LayerNormalization over the last axis instead of
   LayerNorm2d's four ReduceMean/Pow/Div passes over 1M values, and a single transpose at the
   end, of the small mask output instead of the 2M-value feature map. The logits agree with
   the original graph's to 2e-5; LiteMedSAM's decode takes about 66 ms instead of 76.
2. **int8 where it pays and stays accurate**: onnxruntime's dynamic quantization (weights uint8
   per output channel, activations uint8 per call) of the ten MatMuls that run over every image
   token (64 x 64 = 4096 rows): the keys and values of the three token-to-image attentions and
   the queries and output of the two image-to-token attentions; about 32 of the float
   decoder's 79 ms. The MatMuls over the 7 prompt tokens cost almost nothing and are where the
   error came from: quantizing every MatMul agreed with the float decoder's masks at IoU 0.982
   instead of 0.994 (COCO_MVal, 12 photos x 5 clicks, litemedsam-photo without edge
   refinement). The upscaling's two MatMuls in int8 too would save 4.6 ms more, at 0.993 on
   COCO_MVal, but failed the 0.99 bar on DAVIS: litemedsam's box masks agreed at 0.989.
   **Weights are unsigned (U8U8), not signed (U8S8)**, so the integer arithmetic is exact on
   every x86 CPU. onnxruntime's U8S8 kernel on a CPU with AVX2 and no VNNI multiplies with
   ``vpmaddubsw``, which adds two u8 x s8 products into a *saturating* int16 (255 x 127 x 2 >
   32767); only VNNI's ``vpdpbusd`` accumulates in int32. The same file then gave other masks
   on an AMD EPYC without VNNI: agreement with the float decoder 0.974 (worst 0.909) instead
   of 0.994. Its U8U8 kernels widen both operands to 16 bits before multiplying, so no CPU
   saturates: 0.992 (worst 0.966) on that EPYC, 15 COCO_MVal photos x 5 clicks, at the same
   speed (69.5 against 68.9 ms there; float 93.6 ms). reduce_range (7-bit signed weights,
   onnxruntime's other cure) was 5 ms faster but agreed at 0.988 (worst 0.959).
   tests/models/test_bundled_models.py checks the kernel's exactness on the CPU it runs on.

Steps 1 and 2: 45 ms a decode instead of 76 (one thread). Choices measured on COCO_MVal only;
DAVIS measures the result (models/*/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

INT8_NAME = "decoder.int8.onnx"
UPSCALING = "/output_upscaling/"
ROWS = "/upscale_rows/"  # prefix of the nodes and tensors this script adds


def image_token_matmuls(model: Any) -> list[str]:
    """The names of the decoder's MatMuls whose input is the 4096 image tokens."""
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        name = node.name
        keys_values = "token_to_image" in name and ("/k_proj/" in name or "/v_proj/" in name)
        queries_out = "image_to_token" in name and ("/q_proj/" in name or "/out_proj/" in name)
        if keys_values or queries_out:
            names.append(name)
    return names


def _gelu(x: str, out: str) -> list[Any]:
    """The exact (erf) GELU, in the node pattern onnxruntime fuses into one Gelu kernel."""
    from onnx import helper

    return [helper.make_node("Div", [x, ROWS + "sqrt2"], [out + "_d"], name=out + "/Div"),
            helper.make_node("Erf", [out + "_d"], [out + "_e"], name=out + "/Erf"),
            helper.make_node("Add", [out + "_e", ROWS + "one"], [out + "_a"], name=out + "/Add"),
            helper.make_node("Mul", [x, out + "_a"], [out + "_m"], name=out + "/Mul"),
            helper.make_node("Mul", [out + "_m", ROWS + "half"], [out], name=out + "/Mul_1")]


def _constant_subgraph(model: Any, tensor: str) -> bool:
    """True when ``tensor`` is computed from initializers and Constant nodes only."""
    producer = {o: n for n in model.graph.node for o in n.output}
    initializers = {i.name for i in model.graph.initializer}
    stack, seen = [tensor], set()
    while stack:
        name = stack.pop()
        if name in seen or name in initializers or name == "":
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:
            return False  # a graph input
        stack.extend(node.input)
    return True


def drop_constant_tile(model: Any) -> Any:
    """Step 0's Tile, in place: its output's readers read its (constant) input instead.
    SystemExit when the graph is not as described (point_coords' batch must be 1)."""
    g = model.graph
    coords = next((i for i in g.input if i.name == "point_coords"), None)
    if coords is None or coords.type.tensor_type.shape.dim[0].dim_value != 1:
        raise SystemExit("point_coords must have a batch of 1 for the Tile to repeat nothing")
    tiles = [n for n in g.node if n.op_type == "Tile"]
    if len(tiles) != 1 or not _constant_subgraph(model, tiles[0].input[0]):
        raise SystemExit(f"expected one Tile of the constant positional encoding, found "
                         f"{[t.name for t in tiles]}")
    tile = tiles[0]
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == tile.output[0]:
                node.input[i] = tile.input[0]
    g.node.remove(tile)
    _drop_dead(model)
    return model


def _drop_dead(model: Any) -> None:
    """Removes the nodes whose outputs nobody reads, and the initializers nobody reads."""
    g = model.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            g.node.remove(node)
    used = {i for n in g.node for i in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)


def _first_mask_only(model: Any, masks_tensor: str) -> bool:
    """Whether the graph's only reader of ``masks_tensor`` (1, K, H, W) keeps mask 0 alone."""
    from onnx import numpy_helper

    g = model.graph
    readers = [n for n in g.node if masks_tensor in n.input]
    if len(readers) != 1 or readers[0].op_type != "Slice" or len(readers[0].input) < 4:
        return False
    producer = {o: n for n in g.node for o in n.output}
    values = []
    for name in readers[0].input[1:]:
        node = producer.get(name)
        if node is None or node.op_type != "Constant":
            return False
        values.append(numpy_helper.to_array(node.attribute[0].t).tolist())
    starts, ends, axes = values[:3]
    steps = values[3] if len(values) > 3 else [1]
    return bool(starts == [0] and ends == [1] and axes == [1] and steps == [1])


def rewrite_upscaling(model: Any) -> Any:
    """Step 1 of the module docstring, in place; SystemExit when the graph is not SAM's export.

    Kept: the tokens ``/Transpose`` reads (1, H*W, C, row h*W + w), the hypernetwork output
    ``/MatMul_1`` reads (1, K, C2) and the tensor ``/Reshape_7`` writes (1, K, 4H, 4W), which
    the rest of the graph uses. Replaced: everything in between.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    nodes = {n.name: n for n in g.node}
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    try:
        transpose, reshape_in = nodes["/Transpose"], nodes["/Reshape_5"]
        up1 = nodes[UPSCALING + "output_upscaling.0/ConvTranspose"]
        norm_mul = nodes[UPSCALING + "output_upscaling.1/Mul"]
        norm_add = nodes[UPSCALING + "output_upscaling.1/Add_1"]
        norm_eps = producer[UPSCALING + "output_upscaling.1/Constant_1_output_0"]
        up2 = nodes[UPSCALING + "output_upscaling.3/ConvTranspose"]
        product, reshape_out = nodes["/MatMul_1"], nodes["/Reshape_7"]
    except KeyError as exc:
        raise SystemExit(f"not SAM's mask decoder as segment-anything exports it: no {exc}") \
            from exc
    if reshape_in.input[0] != transpose.output[0] or up1.input[0] != reshape_in.output[0]:
        raise SystemExit("unexpected wiring before the output upscaling")
    _, c_in, h, w = (int(v) for v in numpy_helper.to_array(
        producer[reshape_in.input[1]].attribute[0].t))
    w1, b1 = weights[up1.input[1]], weights[up1.input[2]]  # (C_in, C1, 2, 2), (C1,)
    w2, b2 = weights[up2.input[1]], weights[up2.input[2]]
    c1, c2 = w1.shape[1], w2.shape[1]
    eps = float(numpy_helper.to_array(norm_eps.attribute[0].t))

    def tensor(name: str, value: Any, dtype: Any = np.float32) -> Any:
        return numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), ROWS + name)

    # ConvTranspose k2 s2: out[co, 2y+dy, 2x+dx] = sum_ci in[ci, y, x] W[ci, co, dy, dx] + b[co],
    # so one row of C_in becomes 2*2*C1 values ordered (dy, dx, co).
    added = [
        tensor("w1", w1.transpose(0, 2, 3, 1).reshape(c_in, 4 * c1)),
        tensor("b1", np.tile(b1, 4)),
        tensor("gamma", weights[norm_mul.input[0]].reshape(-1)),
        tensor("beta", weights[norm_add.input[1]].reshape(-1)),
        tensor("w2", w2.transpose(0, 2, 3, 1).reshape(c1, 4 * c2)),
        tensor("b2", np.tile(b2, 4)),
        tensor("rows_in", [-1, c_in], np.int64), tensor("rows_c1", [-1, c1], np.int64),
        tensor("rows_c2", [-1, c2], np.int64),
        # rows (y, x, dy1, dx1, dy2, dx2) x masks -> masks x (y, dy1, dy2) x (x, dx1, dx2)
        tensor("grid", [h, w, 2, 2, 2, 2, -1], np.int64),
        tensor("out", [1, -1, 4 * h, 4 * w], np.int64),
        tensor("sqrt2", np.sqrt(2.0)), tensor("one", 1.0), tensor("half", 0.5),
        tensor("first", [0], np.int64), tensor("second", [1], np.int64),
    ]
    r = ROWS
    # The hypernetwork's rows (one per mask token), cut to the first when only its mask is
    # output: the product and the reordering after it then handle one mask instead of four.
    first_only = _first_mask_only(model, reshape_out.output[0])
    hyper = [helper.make_node("Reshape", [product.input[0], r + "rows_c2"],
                              [r + "hyper_all" if first_only else r + "hyper"],
                              name=r + "hyper")]
    if first_only:
        hyper.append(helper.make_node("Slice", [r + "hyper_all", r + "first", r + "second",
                                                r + "first"], [r + "hyper"],
                                      name=r + "hyper_first"))
    new = [
        helper.make_node("Reshape", [transpose.input[0], r + "rows_in"], [r + "x"], name=r + "x"),
        helper.make_node("MatMul", [r + "x", r + "w1"], [r + "y1m"], name=r + "up1/MatMul"),
        helper.make_node("Add", [r + "y1m", r + "b1"], [r + "y1b"], name=r + "up1/Add"),
        helper.make_node("Reshape", [r + "y1b", r + "rows_c1"], [r + "y1"], name=r + "y1"),
        helper.make_node("LayerNormalization", [r + "y1", r + "gamma", r + "beta"], [r + "n1"],
                         name=r + "norm", axis=-1, epsilon=eps),
        *_gelu(r + "n1", r + "g1"),
        helper.make_node("MatMul", [r + "g1", r + "w2"], [r + "y2m"], name=r + "up2/MatMul"),
        helper.make_node("Add", [r + "y2m", r + "b2"], [r + "y2b"], name=r + "up2/Add"),
        *_gelu(r + "y2b", r + "g2"),
        helper.make_node("Reshape", [r + "g2", r + "rows_c2"], [r + "pix"], name=r + "pix"),
        *hyper,
        helper.make_node("Transpose", [r + "hyper"], [r + "hyper_t"], name=r + "hyper_t",
                         perm=[1, 0]),
        helper.make_node("MatMul", [r + "pix", r + "hyper_t"], [r + "z"], name=r + "masks"),
        helper.make_node("Reshape", [r + "z", r + "grid"], [r + "zg"], name=r + "zg"),
        helper.make_node("Transpose", [r + "zg"], [r + "zt"], name=r + "zt",
                         perm=[6, 0, 2, 4, 1, 3, 5]),
        helper.make_node("Reshape", [r + "zt", r + "out"], [reshape_out.output[0]],
                         name=r + "out"),
    ]
    removed = {transpose.name, reshape_in.name, product.name, reshape_out.name,
               nodes["/Reshape_6"].name}
    removed |= {n.name for n in g.node if n.name.startswith(UPSCALING)}
    kept = []
    for node in g.node:
        if node.name == product.name:
            kept.extend(new)  # where the hypernetwork output and the tokens both exist
        if node.name not in removed:
            kept.append(node)
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend(added)
    _drop_dead(model)  # Constant nodes that fed only removed ones, unused initializers
    onnx.checker.check_model(model)
    return model


def exact_rewrites(model: Any) -> Any:
    """Steps 0 and 1, in place: the same logits, less work."""
    return rewrite_upscaling(drop_constant_tile(model))


def optimize_decoder(src: Path, dst: Path) -> list[str]:
    """Writes the fast decoder; returns the names of the MatMuls made int8."""
    import tempfile

    import onnx

    model = onnx.load(str(src))
    nodes = image_token_matmuls(model)
    if len(nodes) != 10:
        raise SystemExit(f"{src}: expected SAM's 10 image-token MatMuls, found {len(nodes)}: "
                         "not a SAM mask decoder exported by segment-anything's ONNX code")
    exact_rewrites(model)
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.onnx"
        onnx.save(model, str(rows))
        quantize_matmuls(rows, dst, nodes)
    return nodes


def quantize_matmuls(src: Path, dst: Path, nodes: list[str] | None = None) -> None:
    """Step 2: dynamic int8 quantization of the named MatMuls (all of them when None), with
    unsigned weights per output channel: exact integer arithmetic on every x86 CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8, per_channel=True,
                     nodes_to_quantize=nodes or [], op_types_to_quantize=["MatMul"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders with model.json")
    args = parser.parse_args(argv)
    for folder in args.folders:
        descriptor = folder / "model.json"
        data = json.loads(descriptor.read_text())
        if data.get("family") != "sam":
            print(f"{folder}: family {data.get('family')!r}, skipped (SAM only)",
                  file=sys.stderr)
            continue
        nodes = optimize_decoder(folder / data.get("decoder", "decoder.onnx"),
                                 folder / INT8_NAME)
        data["decoder_int8"] = INT8_NAME
        descriptor.write_text(json.dumps(data, indent=2) + "\n")
        print(f"{folder / INT8_NAME}: constants folded, upscaling on rows, {len(nodes)} "
              "MatMuls int8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
