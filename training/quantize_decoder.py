"""Writes a SAM-family model's int8 decoder next to its float one and names it in model.json.

    .venv/bin/python training/quantize_decoder.py models/litemedsam models/litemedsam-photo

Runs in the app's venv with the dev extra (it needs the ``onnx`` package; onnxruntime's own
quantizer does the work). Deterministic: the same float decoder gives the same int8 file.

What is quantized, and why only that: onnxruntime's dynamic quantization (weights int8 per
output channel, activations uint8 per call) of the ten MatMuls that run over every image token
(64 x 64 = 4096 rows): the keys and values of the three token-to-image attentions and the
queries and output of the two image-to-token attentions. At one thread they take about 32 of
the decoder's 79 ms; int8 brings the whole decode to 59 ms. The MatMuls over the 7 prompt
tokens cost almost nothing and are where the error came from: quantizing every MatMul made
the decode no faster (56 ms) but its masks agreed with the float decoder's at IoU 0.982
instead of 0.994 (COCO_MVal, 12 photos x 5 clicks, litemedsam-photo without edge refinement).
Measured choices, on COCO_MVal only; DAVIS measures the result (models/*/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

INT8_NAME = "decoder.int8.onnx"


def image_token_matmuls(model: object) -> list[str]:
    """The names of the decoder's MatMuls whose input is the 4096 image tokens."""
    names = []
    for node in model.graph.node:  # type: ignore[attr-defined]
        if node.op_type != "MatMul":
            continue
        name = node.name
        keys_values = "token_to_image" in name and ("/k_proj/" in name or "/v_proj/" in name)
        queries_out = "image_to_token" in name and ("/q_proj/" in name or "/out_proj/" in name)
        if keys_values or queries_out:
            names.append(name)
    return names


def quantize_decoder(src: Path, dst: Path) -> list[str]:
    """Writes the int8 decoder; returns the quantized MatMuls' names."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = image_token_matmuls(onnx.load(str(src)))
    if len(nodes) != 10:
        raise SystemExit(f"{src}: expected SAM's 10 image-token MatMuls, found {len(nodes)}: "
                         "not a SAM mask decoder exported by segment-anything's ONNX code")
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_quantize=nodes, op_types_to_quantize=["MatMul"])
    return nodes


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
        nodes = quantize_decoder(folder / data.get("decoder", "decoder.onnx"),
                                 folder / INT8_NAME)
        data["decoder_int8"] = INT8_NAME
        descriptor.write_text(json.dumps(data, indent=2) + "\n")
        print(f"{folder / INT8_NAME}: {len(nodes)} MatMuls int8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
