"""Make a dynamically quantised int8 graph portable: the same scores on every CPU and in every batch.

``portable_int8`` applies two exact rewrites to a graph made by ``quantize_dynamic``:

1. ``unsigned_weights``: int8 weights and zero points become uint8 (+128 on both, so every (w - zero point)
   product is unchanged). onnxruntime's u8 x s8 kernels on x86 CPUs without AVX-512 VNNI multiply with
   ``vpmaddubsw``, whose int16 pair sums saturate, so the same graph scores differently on older CPUs (and on
   another onnxruntime that picks another kernel); u8 x u8 has no such path and its integer sums are exact
   everywhere. On a VNNI CPU the rewritten graph gives bit-identical scores.
2. ``per_row_quantization`` (below): each message gets its own activation range.

``python -m training.portable_quant --model-dir DIR`` rewrites a model directory's ``model.onnx`` in place
(and its ``golden.json``); training applies the same function to every new export.

Per-message activation quantisation: make a dynamically quantised graph batch-invariant.

``quantize_dynamic`` puts a ``DynamicQuantizeLinear`` before every ``MatMulInteger``: one scale and zero
point for the whole activation tensor, i.e. for the whole batch, padding included. A message's score then
moves with its batch-mates and their padding (``benchmarks/batch_invariance.py`` measures by how much).
``per_row_quantization`` rewrites each of them so that every message (row of the batch) gets its own range,
taken over its real tokens only, exactly as if it were scored alone:

- the activation times ``attention_mask``: padding becomes 0, which every range holds anyway (ranges are
  widened to include 0), so padding never changes a row's range;
- per row, over (sequence, features): min and max widened to 0, scale = (max - min) / 255 and zero point =
  round(clip(-min / scale, 0, 255)): ``DynamicQuantizeLinear``'s own formulas;
- ``QuantizeLinear`` along axis 0 with those scales and zero points;
- ``MatMulInteger`` without the activation zero point (it takes only a scalar one), corrected exactly in
  int32 by zero point x the weight's column sums. The ``Mul`` of activation scale and weight scale that
  follows broadcasts the per-row scale as it is.

On the shipped model a message scored alone gives bit-identical outputs before and after the rewrite, and in
any batch the rewritten graph stays within 2e-7 of that. The price is the fused int8 kernels onnxruntime
builds for the original pattern (``DynamicQuantizeMatMul``); the benchmark measures it. The graph must take
``attention_mask`` and quantise activations shaped [batch, sequence, features] (encoder models exported
with ``quantize_dynamic``); anything else is refused with ``ValueError`` rather than rewritten wrongly.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.detector.onnx_detector import write_golden

_PREFIX = "per_row_"
_WEIGHT_SHIFT = 128


def portable_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with uint8 weights and per-message activation ranges (see the module docstring)."""
    return per_row_quantization(unsigned_weights(model))


def unsigned_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose int8 ``MatMulInteger`` weights and weight zero points are uint8 (+128)."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    initializers = {initializer.name: initializer for initializer in result.graph.initializer}
    shifted: set[str] = set()
    for node in result.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        if len(node.input) < 4 or not node.input[3]:
            raise ValueError(f"{node.name}: a weight without a zero point cannot be shifted exactly")
        for name in (node.input[1], node.input[3]):
            if name in shifted:
                continue
            if name not in initializers:
                raise ValueError(f"{node.name}: {name!r} is not a constant")
            values = numpy_helper.to_array(initializers[name])
            if values.dtype == np.uint8:
                continue
            if values.dtype != np.int8:
                raise ValueError(f"{node.name}: {name!r} is {values.dtype}, expected int8 or uint8")
            unsigned = (values.astype(np.int16) + _WEIGHT_SHIFT).astype(np.uint8)
            initializers[name].CopyFrom(numpy_helper.from_array(unsigned, name))
            shifted.add(name)
    onnx.checker.check_model(result)
    return result


def per_row_quantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose dynamic activation quantisation is per row (message), not per tensor."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    if "attention_mask" not in {graph_input.name for graph_input in graph.input}:
        raise ValueError("per-row quantisation needs the graph input 'attention_mask' to find the padding")
    initializers = {initializer.name: initializer for initializer in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    constants: dict[str, np.ndarray[Any, Any]] = {
        "axis2": np.array([2], dtype=np.int64),
        "flat": np.array([-1], dtype=np.int64),
        "zero": np.array(0.0, dtype=np.float32),
        "qmax": np.array(255.0, dtype=np.float32),
    }
    new_initializers = [numpy_helper.from_array(value, _PREFIX + name) for name, value in constants.items()]
    zero, qmax = _PREFIX + "zero", _PREFIX + "qmax"
    mask = _PREFIX + "mask"
    nodes = [
        helper.make_node("Cast", ["attention_mask"], [mask + "_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [mask + "_float", _PREFIX + "axis2"], [mask]),
    ]
    corrections: dict[str, list[onnx.NodeProto]] = {}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        activation = node.input[0]
        quantized, scale, zero_point = node.output
        p = f"{_PREFIX}{rewritten}_"
        rewritten += 1
        nodes += [
            helper.make_node("Mul", [activation, mask], [p + "masked"]),
            helper.make_node("ReduceMax", [p + "masked"], [p + "max"], axes=[1, 2], keepdims=1),
            helper.make_node("Max", [p + "max", zero], [p + "max0"]),
            helper.make_node("ReduceMin", [p + "masked"], [p + "min"], axes=[1, 2], keepdims=1),
            helper.make_node("Min", [p + "min", zero], [p + "min0"]),
            helper.make_node("Sub", [p + "max0", p + "min0"], [p + "range"]),
            helper.make_node("Div", [p + "range", qmax], [scale]),
            helper.make_node("Div", [p + "min0", scale], [p + "min_steps"]),
            helper.make_node("Sub", [zero, p + "min_steps"], [p + "zp_exact"]),
            helper.make_node("Clip", [p + "zp_exact", zero, qmax], [p + "zp_clipped"]),
            helper.make_node("Round", [p + "zp_clipped"], [p + "zp_float"]),
            helper.make_node("Cast", [p + "zp_float"], [p + "zp_u8"], to=TensorProto.UINT8),
            helper.make_node("Reshape", [p + "zp_u8", _PREFIX + "flat"], [p + "zp_rows"]),
            helper.make_node("Reshape", [scale, _PREFIX + "flat"], [p + "scale_rows"]),
            helper.make_node(
                "QuantizeLinear", [activation, p + "scale_rows", p + "zp_rows"], [quantized], axis=0
            ),
            helper.make_node("Cast", [p + "zp_float"], [p + "zp_i32"], to=TensorProto.INT32),
        ]
        for consumer in consumers[quantized] + consumers[zero_point]:
            _check_consumer(consumer, quantized=quantized, zero_point=zero_point)
        for consumer in consumers[scale]:
            if consumer.op_type != "Mul":
                raise ValueError(f"{node.name}: its scale feeds {consumer.op_type}, expected Mul")
        for matmul in {id(c): c for c in consumers[quantized]}.values():
            if matmul.input[1] not in initializers:
                raise ValueError(f"{matmul.name}: its weight {matmul.input[1]!r} is not a constant")
            weight = numpy_helper.to_array(initializers[matmul.input[1]]).astype(np.int64)
            weight_zero = (
                numpy_helper.to_array(initializers[matmul.input[3]]).astype(np.int64)
                if len(matmul.input) > 3 and matmul.input[3]
                else np.zeros(weight.shape[-1], dtype=np.int64)
            )
            column_sums = (weight - weight_zero).sum(axis=0).astype(np.int32)
            sums_name = f"{p}{matmul.name}_column_sums"
            new_initializers.append(numpy_helper.from_array(column_sums, sums_name))
            output = matmul.output[0]
            raw = f"{p}{matmul.name}_raw"
            matmul.input[2] = ""  # the activation zero point: now applied below
            matmul.output[0] = raw
            corrections[raw] = [
                helper.make_node("Mul", [p + "zp_i32", sums_name], [raw + "_zp_term"]),
                helper.make_node("Sub", [raw, raw + "_zp_term"], [output]),
            ]
    if not rewritten:
        raise ValueError("the graph has no DynamicQuantizeLinear node: nothing to make per-row")
    ordered: list[onnx.NodeProto] = []
    for node in nodes:
        ordered.append(node)
        if node.op_type == "MatMulInteger":
            ordered.extend(corrections.get(node.output[0], []))
    del graph.node[:]
    graph.node.extend(ordered)
    graph.initializer.extend(new_initializers)
    onnx.checker.check_model(result)
    return result


def _check_consumer(node: onnx.NodeProto, *, quantized: str, zero_point: str) -> None:
    if node.op_type != "MatMulInteger" or node.input[0] != quantized or node.input[2] != zero_point:
        raise ValueError(
            f"{node.name}: a quantised activation feeds {node.op_type} {list(node.input)}; expected "
            "MatMulInteger(activation, weight, activation zero point, ...)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.portable_quant", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="a model directory to rewrite in place")
    args = parser.parse_args(argv)
    model_path = args.model_dir / "model.onnx"
    rewritten = portable_int8(onnx.load_model(str(model_path)))
    temporary = model_path.with_suffix(".onnx.tmp")
    onnx.save_model(rewritten, str(temporary))
    temporary.replace(model_path)
    golden = write_golden(args.model_dir)
    print(
        f"rewrote {model_path}; {len(golden.cases)} golden inputs re-scored with onnxruntime "
        f"{golden.produced_with.onnxruntime}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
