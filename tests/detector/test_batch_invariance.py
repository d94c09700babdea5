"""Portable int8: the shipped model scores a message the same alone and in any batch, on any CPU.

``quantize_dynamic`` quantises activations per tensor (one range per batch, padding included) and stores
signed weights, whose u8 x s8 kernels saturate on x86 CPUs without AVX-512 VNNI. ``training.portable_quant``
rewrites both exactly (per-message ranges, uint8 weights); the shipped model went through it. These tests hold
the rewrite and the shipped graph to that, with the real runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from tests.detector.conftest import ModelDirFactory
from training.portable_quant import per_row_quantization, portable_int8, unsigned_weights
from vigil.detector import MessageScore, OnnxDetector, load_default_model_dir
from vigil.detector.golden import GOLDEN_TEXTS

# Short and long, ordinary and grooming-like: a mixed batch with a lot of padding for the short ones.
MIXED = (
    *GOLDEN_TEXTS,
    "lol same",
    "what r u doing this weekend? my parents r away so we could hang out at mine, nobody would know",
    "brb",
    "does anyone know why the build fails on windows only? it says the path is too long",
)


def as_array(scores: Sequence[MessageScore]) -> np.ndarray:
    return np.array([[score.risk, *score.signals] for score in scores], dtype=np.float64)


async def test_the_shipped_model_scores_a_message_the_same_alone_and_in_a_mixed_batch() -> None:
    detector = await OnnxDetector.load(load_default_model_dir(), intra_op_threads=1, max_batch=64)
    try:
        alone = as_array([(await detector.score([text]))[0] for text in MIXED])
        batched = as_array(await detector.score(MIXED))
        reordered = as_array(await detector.score(MIXED[::-1]))[::-1]
    finally:
        await detector.aclose()
    assert np.abs(batched - alone).max() < 1e-5
    assert np.abs(reordered - alone).max() < 1e-5


def test_the_shipped_graph_is_portable() -> None:
    graph = onnx.load_model(str(load_default_model_dir() / "model.onnx")).graph
    initializers = {initializer.name: initializer for initializer in graph.initializer}
    ops = {node.op_type for node in graph.node}
    assert "DynamicQuantizeLinear" not in ops
    matmuls = [node for node in graph.node if node.op_type == "MatMulInteger"]
    assert matmuls
    for node in matmuls:
        assert initializers[node.input[1]].data_type == TensorProto.UINT8, node.name


# ---------------------------------------------------------------- the rewrite, on a small quantised model

VOCAB, WIDTH = 40, 16


def small_quantised_model(folder: Path) -> onnx.ModelProto:
    """Embedding, MatMul, Relu, MatMul, masked mean; quantised by ``quantize_dynamic`` as training does."""
    rng = np.random.default_rng(7)
    # Rows of very different size: a batch's shared range is set by its loudest message.
    embedding = (rng.normal(size=(VOCAB, WIDTH)) * np.linspace(0.05, 6.0, VOCAB)[:, None]).astype(np.float32)
    initializers = [
        numpy_helper.from_array(embedding, "embedding"),
        numpy_helper.from_array(rng.normal(size=(WIDTH, WIDTH)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(WIDTH, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["embedded"]),
        helper.make_node("MatMul", ["embedded", "w1"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("MatMul", ["active", "w2"], ["projected"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_float", "axis2"], ["mask"]),
        helper.make_node("Mul", ["projected", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["output"]),
    ]
    initializers.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"))
    graph = helper.make_graph(
        nodes,
        "small",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
        initializers,
    )
    # IR version 8 (opset 17's), as the shipped model: onnx may default to one newer than the runtime reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    source, target = folder / "float.onnx", folder / "int8.onnx"
    onnx.save_model(model, str(source))
    quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)
    return onnx.load_model(str(target))


def run(model: onnx.ModelProto, rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Rows padded with id 0 to the longest, masked, scored as one batch."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return np.asarray(session.run(["output"], {"input_ids": ids, "attention_mask": mask})[0])


ROWS = ([1, 2, 3], [39, 38, 37, 36, 35, 34, 33], [5], [20, 21, 22, 23])


@pytest.fixture(scope="module")
def quantised(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    return small_quantised_model(tmp_path_factory.mktemp("small-model"))


def test_per_tensor_quantisation_moves_a_message_with_its_batch(quantised: onnx.ModelProto) -> None:
    alone = np.vstack([run(quantised, [row]) for row in ROWS])
    # What the rewrite removes: without it the quiet messages change when a loud one shares their batch.
    assert np.abs(run(quantised, ROWS) - alone).max() > 1e-3


def test_portable_rewrite_scores_alone_as_before_and_the_same_in_any_batch(
    quantised: onnx.ModelProto,
) -> None:
    portable = portable_int8(quantised)
    before = np.vstack([run(quantised, [row]) for row in ROWS])
    alone = np.vstack([run(portable, [row]) for row in ROWS])
    # Exact on CPUs with VNNI; elsewhere the signed original may saturate, which the rewrite avoids.
    np.testing.assert_allclose(alone, before, rtol=1e-3, atol=1e-3)
    assert np.abs(run(portable, ROWS) - alone).max() < 1e-5
    assert np.abs(run(portable, ROWS[::-1])[::-1] - alone).max() < 1e-5


def test_unsigned_weights_is_exact(quantised: onnx.ModelProto) -> None:
    shifted = unsigned_weights(quantised)
    types = {init.name: init.data_type for init in shifted.graph.initializer}
    weights = [node.input[1] for node in shifted.graph.node if node.op_type == "MatMulInteger"]
    assert weights and all(types[name] == TensorProto.UINT8 for name in weights)
    for row in ROWS:
        np.testing.assert_allclose(run(shifted, [row]), run(quantised, [row]), rtol=1e-6, atol=1e-6)
    # Idempotent: a graph that is already unsigned is left as it is.
    assert unsigned_weights(shifted).SerializeToString() == shifted.SerializeToString()


def test_per_row_rewrite_refuses_a_graph_it_does_not_understand(build_model_dir: ModelDirFactory) -> None:
    tiny = onnx.load_model(str(build_model_dir() / "model.onnx"))
    with pytest.raises(ValueError, match="no DynamicQuantizeLinear"):
        per_row_quantization(tiny)
    del tiny.graph.input[1]  # attention_mask
    with pytest.raises(ValueError, match="attention_mask"):
        per_row_quantization(tiny)
