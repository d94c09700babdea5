"""A real GRU pair model for tests: one GRU step as an ONNX graph built with ``onnx.helper`` from weights.

The graph follows the production contract (``detector/MODEL_CARD.md``, "Plugging in another model"): inputs
``features`` [N, F], ``own`` [N, 1], ``state`` [N, S]; outputs ``risk_logit`` [N] and ``next_state`` [N, S].
Inside, a standard GRU cell (PyTorch's ``GRUCell`` equations, gates r, z, n) reads x = concat(features, own)
and a linear head reads the new state:

    r = sigmoid(x W_r + b_r + h U_r + c_r)
    z = sigmoid(x W_z + b_z + h U_z + c_z)
    n = tanh(x W_n + b_n + r * (h U_n + c_n))
    h' = (1 - z) * n + z * h
    risk_logit = h' w_out + b_out

``reference_step`` computes the same in numpy, so tests compare the runtime's numbers with an independent
implementation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.support.keyword_model import SIGNALS, build_keyword_model
from vigil.detector.pair import FLATTENED_OWN

Array = npt.NDArray[np.float32]
GATES = ("r", "z", "n")
PAIR_MODEL_FILE = "pair_model.onnx"


@dataclass(frozen=True, slots=True, kw_only=True)
class GruWeights:
    """Per gate: input weights [F + 1, S] (the last row is ``own``), state weights [S, S], two biases [S]."""

    w: Mapping[str, Array]
    u: Mapping[str, Array]
    b: Mapping[str, Array]
    c: Mapping[str, Array]
    w_out: Array  # [S]
    b_out: float

    @property
    def feature_size(self) -> int:
        return int(self.w["r"].shape[0]) - 1

    @property
    def state_size(self) -> int:
        return int(self.w_out.shape[0])


def random_weights(*, feature_size: int, state_size: int, seed: int = 7, scale: float = 0.5) -> GruWeights:
    rng = np.random.default_rng(seed)

    def draw(*shape: int) -> Array:
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return GruWeights(
        w={g: draw(feature_size + 1, state_size) for g in GATES},
        u={g: draw(state_size, state_size) for g in GATES},
        b={g: draw(state_size) for g in GATES},
        c={g: draw(state_size) for g in GATES},
        w_out=draw(state_size),
        b_out=float(draw(1)[0]),
    )


def accumulating_weights(
    *, feature_size: int, state_size: int, risk_scale: float = 0.5, seed: int = 11
) -> GruWeights:
    """Random weights, except that unit 0 (the only one the head reads) tracks the member's own risk logits.

    For the member who wrote (own = 1): z = sigmoid(0) = 0.5, n = tanh(risk_scale * risk logit), so unit 0
    moves half-way towards tanh(scaled risk logit) on each own message. For the other member (own = 0):
    z = sigmoid(8), so unit 0 barely moves. risk_logit = 4 * h0 - 1. On the keyword model a grooming-like
    message (risk logit +9) takes the author's risk to 0.73, a second one to 0.88; an ordinary message (risk
    logit -3) takes it to 0.06.
    """
    base = random_weights(feature_size=feature_size, state_size=state_size, seed=seed, scale=0.3)
    w = {g: base.w[g].copy() for g in GATES}
    u = {g: base.u[g].copy() for g in GATES}
    b = {g: base.b[g].copy() for g in GATES}
    c = {g: base.c[g].copy() for g in GATES}
    for g in GATES:
        w[g][:, 0] = 0.0
        u[g][:, 0] = 0.0
        b[g][0] = 0.0
        c[g][0] = 0.0
    own_row, risk_row = feature_size, feature_size - 1
    w["z"][own_row, 0] = -8.0
    b["z"][0] = 8.0
    w["n"][risk_row, 0] = risk_scale
    w_out = np.zeros(state_size, dtype=np.float32)
    w_out[0] = 4.0
    return replace(base, w=w, u=u, b=b, c=c, w_out=w_out, b_out=-1.0)


def reference_step(weights: GruWeights, features: Array, own: Array, state: Array) -> tuple[Array, Array]:
    """numpy GRU step in float64: (risk logits [N], next states [N, S])."""
    x = np.concatenate([features, own], axis=1).astype(np.float64)
    h = state.astype(np.float64)

    def gate(g: str) -> npt.NDArray[np.float64]:
        return x @ weights.w[g].astype(np.float64) + weights.b[g]

    def recur(g: str) -> npt.NDArray[np.float64]:
        return h @ weights.u[g].astype(np.float64) + weights.c[g]

    r = 1.0 / (1.0 + np.exp(-(gate("r") + recur("r"))))
    z = 1.0 / (1.0 + np.exp(-(gate("z") + recur("z"))))
    n = np.tanh(gate("n") + r * recur("n"))
    next_state = (1.0 - z) * n + z * h
    logits = next_state @ weights.w_out.astype(np.float64) + weights.b_out
    return logits.astype(np.float32), next_state.astype(np.float32)


def build_gru_graph(
    weights: GruWeights,
    *,
    input_names: tuple[str, str, str] = ("features", "own", "state"),
    output_names: tuple[str, str] = ("risk_logit", "next_state"),
    declared_feature_size: int | str | None = None,
    batch_dim: str | int = "N",
    own_type: int = TensorProto.FLOAT,
    declare_output_shapes: bool = True,
) -> onnx.ModelProto:
    """The GRU step graph. The keyword arguments break the contract on purpose, for load-error tests."""
    features_name, own_name, state_name = input_names
    risk_name, next_name = output_names
    feature_size = weights.feature_size
    initializers = [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1")]
    nodes = []
    if own_type == TensorProto.FLOAT:
        nodes.append(helper.make_node("Identity", [own_name], ["own_float"]))
    else:
        nodes.append(helper.make_node("Cast", [own_name], ["own_float"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Concat", [features_name, "own_float"], ["x"], axis=1))
    for g in GATES:
        initializers += [
            numpy_helper.from_array(weights.w[g], f"w_{g}"),
            numpy_helper.from_array(weights.u[g], f"u_{g}"),
            numpy_helper.from_array(weights.b[g], f"b_{g}"),
            numpy_helper.from_array(weights.c[g], f"c_{g}"),
        ]
        nodes += [
            helper.make_node("MatMul", ["x", f"w_{g}"], [f"xw_{g}"]),
            helper.make_node("Add", [f"xw_{g}", f"b_{g}"], [f"gx_{g}"]),
            helper.make_node("MatMul", [state_name, f"u_{g}"], [f"hu_{g}"]),
            helper.make_node("Add", [f"hu_{g}", f"c_{g}"], [f"gh_{g}"]),
        ]
    nodes += [
        helper.make_node("Add", ["gx_r", "gh_r"], ["pre_r"]),
        helper.make_node("Sigmoid", ["pre_r"], ["r"]),
        helper.make_node("Add", ["gx_z", "gh_z"], ["pre_z"]),
        helper.make_node("Sigmoid", ["pre_z"], ["z"]),
        helper.make_node("Mul", ["r", "gh_n"], ["r_gh_n"]),
        helper.make_node("Add", ["gx_n", "r_gh_n"], ["pre_n"]),
        helper.make_node("Tanh", ["pre_n"], ["n"]),
        # h' = n + z * (h - n), which is (1 - z) * n + z * h
        helper.make_node("Sub", [state_name, "n"], ["h_minus_n"]),
        helper.make_node("Mul", ["z", "h_minus_n"], ["z_h_minus_n"]),
        helper.make_node("Add", ["n", "z_h_minus_n"], [next_name]),
        helper.make_node("MatMul", [next_name, "w_out"], ["logit_column"]),
        helper.make_node("Add", ["logit_column", "b_out"], ["logit_biased"]),
        helper.make_node("Squeeze", ["logit_biased", "axis_1"], [risk_name]),
    ]
    initializers += [
        numpy_helper.from_array(weights.w_out.reshape(-1, 1), "w_out"),
        numpy_helper.from_array(np.array([weights.b_out], dtype=np.float32), "b_out"),
    ]
    declared = feature_size if declared_feature_size is None else declared_feature_size

    value = helper.make_tensor_value_info

    def output(name: str, shape: list[str | int]) -> onnx.ValueInfoProto:
        return value(name, TensorProto.FLOAT, shape if declare_output_shapes else None)

    graph = helper.make_graph(
        nodes,
        "vigil_test_gru_step",
        [
            value(features_name, TensorProto.FLOAT, [batch_dim, declared]),
            value(own_name, own_type, [batch_dim, 1]),
            value(state_name, TensorProto.FLOAT, [batch_dim, weights.state_size]),
        ],
        [
            output(risk_name, [batch_dim]),
            output(next_name, [batch_dim, weights.state_size]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    if declare_output_shapes:  # the checker insists on declared output shapes; onnxruntime does not
        onnx.checker.check_model(model)
    return model


def add_gru_pair_model(
    model_dir: Path,
    weights: GruWeights,
    *,
    graph: onnx.ModelProto | None = None,
    embedding_output: str = "embedding",
    file: str = PAIR_MODEL_FILE,
) -> Path:
    """Write the GRU step into ``model_dir`` and point its metadata.json's ``pair_model`` at it."""
    onnx.save_model(graph if graph is not None else build_gru_graph(weights), str(model_dir / file))
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["pair_model"] = {
        "type": "gru",
        "file": file,
        "state_size": weights.state_size,
        "feature_size": weights.feature_size,
        "embedding_output": embedding_output,
    }
    path.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return model_dir


KEYWORD_EMBEDDING_SIZE = 4
KEYWORD_GRU_WEIGHTS = accumulating_weights(
    feature_size=KEYWORD_EMBEDDING_SIZE + len(SIGNALS) + 1, state_size=5
)


def flattened_reader(weights: GruWeights) -> GruWeights:
    """``accumulating_weights`` whose unit 0 moves half-way on a flattened chunk (own = FLATTENED_OWN), as it
    does on an own message; own messages then move it nearly all the way."""
    own_row = weights.feature_size
    w = {g: weights.w[g].copy() for g in GATES}
    w["z"][own_row, 0] = -float(weights.b["z"][0]) / FLATTENED_OWN
    return replace(weights, w=w)


FLATTENED_KEYWORD_GRU_WEIGHTS = flattened_reader(KEYWORD_GRU_WEIGHTS)


def build_gru_keyword_model(directory: Path, *, weights: GruWeights = KEYWORD_GRU_WEIGHTS) -> Path:
    """The keyword model (scores known from the words) with an embedding output and the accumulating GRU."""
    build_keyword_model(directory, embedding_size=KEYWORD_EMBEDDING_SIZE, name="keyword-gru-test-model")
    return add_gru_pair_model(directory, weights)
