"""A tiny but real model directory: an ONNX graph built with ``onnx.helper`` and a ``tokenizers`` WordLevel.

The graph is a bag-of-words classifier: embedding lookup of ``input_ids`` (plus token-type embeddings when
the graph declares ``token_type_ids``), mean over ``attention_mask``, then two linear heads giving
``risk_logit`` [B] and ``signal_logits`` [B, S] (and, when asked, the pooled vector as ``embedding``
[B, 8], for a learned pair model). Masked mean pooling makes every score independent of how
much padding its batch needed, so batched and one-by-one results must agree.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from vigil.detector.onnx_detector import OnnxDetector

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
WORDS = (
    "hi",
    "hello",
    "hey",
    "how",
    "are",
    "you",
    "old",
    "what",
    "is",
    "your",
    "age",
    "do",
    "i",
    "u",
    "we",
    "they",
    "it",
    "this",
    "that",
    "a",
    "the",
    "to",
    "and",
    "or",
    "not",
    "no",
    "yes",
    "school",
    "game",
    "play",
    "want",
    "meet",
    "secret",
    "tell",
    "parents",
    "dont",
    "anyone",
    "pic",
    "photo",
    "send",
    "home",
    "alone",
    "later",
    "tonight",
    "lol",
    "ok",
    "cool",
    "nice",
    "thanks",
    "sure",
    "maybe",
    "friend",
    "mom",
    "dad",
)
TINY_SIGNALS = (
    {"name": "asks_age", "label": "asks the other person's age"},
    {"name": "secrecy", "label": "asks to keep the conversation secret"},
    {"name": "meeting", "label": "proposes to meet in person"},
)
TINY_MAX_LENGTH = 16
EMBEDDING_DIM = 8


class ModelDirFactory(Protocol):
    """Builds a model directory under the test's ``tmp_path`` and returns it."""

    def __call__(
        self,
        *,
        name: str = ...,
        token_type_ids: bool = ...,
        extra_input: str | None = ...,
        graph_signals: int | None = ...,
        symbolic_signal_dim: bool = ...,
        special_tokens: bool = ...,
        embedding_output: bool = ...,
    ) -> Path: ...


def tiny_metadata() -> dict[str, Any]:
    return {
        "format": 1,
        "name": "vigil-tiny-test",
        "version": "0.0.1",
        "max_length": TINY_MAX_LENGTH,
        "outputs": {"risk": "risk_logit", "signals": "signal_logits"},
        "signals": [dict(signal) for signal in TINY_SIGNALS],
        "signal_threshold": 0.5,
        "default_threshold": 0.7,
        "pair_model": {"type": "ema", "alpha": 0.1, "min_messages": 8},
        "policy_defaults": {"sustain_messages": 3},
        "training_data": ["none: random weights for tests"],
        "metrics": {},
        "known_biases": [],
        "intended_use": "tests only",
    }


def build_tokenizer(*, special_tokens: bool) -> Tokenizer:
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *WORDS))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if special_tokens:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    # Like many exported tokenizers: fixed-length padding and a longer truncation than the model's.
    tokenizer.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]", length=128)
    tokenizer.enable_truncation(max_length=128)
    return tokenizer


def build_graph(
    *,
    vocab_size: int,
    signal_count: int,
    token_type_ids: bool,
    extra_input: str | None,
    symbolic_signal_dim: bool,
    embedding_output: bool = False,
) -> onnx.ModelProto:
    rng = np.random.default_rng(20261101)
    initializers = [
        numpy_helper.from_array(
            rng.normal(size=(vocab_size, EMBEDDING_DIM)).astype(np.float32), "token_embedding"
        ),
        numpy_helper.from_array(rng.normal(size=(2, EMBEDDING_DIM)).astype(np.float32), "type_embedding"),
        numpy_helper.from_array(rng.normal(size=(EMBEDDING_DIM, 1)).astype(np.float32), "risk_weight"),
        numpy_helper.from_array(np.array([-0.5], dtype=np.float32), "risk_bias"),
        numpy_helper.from_array(
            rng.normal(size=(EMBEDDING_DIM, signal_count)).astype(np.float32), "signal_weight"
        ),
        numpy_helper.from_array(rng.normal(size=(signal_count,)).astype(np.float32), "signal_bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis_2"),
        numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "epsilon"),
    ]
    token_matrix = helper.make_tensor_value_info
    inputs = [
        token_matrix("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        token_matrix("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    nodes = [helper.make_node("Gather", ["token_embedding", "input_ids"], ["token_vectors"])]
    if token_type_ids:
        inputs.append(token_matrix("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
        nodes += [
            helper.make_node("Gather", ["type_embedding", "token_type_ids"], ["type_vectors"]),
            helper.make_node("Add", ["token_vectors", "type_vectors"], ["input_vectors"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["token_vectors"], ["input_vectors"]))
    if extra_input is not None:
        inputs.append(token_matrix(extra_input, TensorProto.INT64, ["batch", "sequence"]))
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_float", "axis_2"], ["mask_column"]),
        helper.make_node("Mul", ["input_vectors", "mask_column"], ["masked_vectors"]),
        helper.make_node("ReduceSum", ["masked_vectors", "axis_1"], ["vector_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_column", "axis_1"], ["token_count"], keepdims=0),
        helper.make_node("Max", ["token_count", "epsilon"], ["safe_count"]),
        helper.make_node("Div", ["vector_sum", "safe_count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "risk_weight"], ["risk_column"]),
        helper.make_node("Add", ["risk_column", "risk_bias"], ["risk_biased"]),
        helper.make_node("Squeeze", ["risk_biased", "axis_1"], ["risk_logit"]),
        helper.make_node("MatMul", ["pooled", "signal_weight"], ["signal_product"]),
        helper.make_node("Add", ["signal_product", "signal_bias"], ["signal_logits"]),
    ]
    signal_dim: str | int = "signals" if symbolic_signal_dim else signal_count
    outputs = [
        helper.make_tensor_value_info("risk_logit", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("signal_logits", TensorProto.FLOAT, ["batch", signal_dim]),
    ]
    if embedding_output:
        nodes.append(helper.make_node("Identity", ["pooled"], ["embedding"]))
        outputs.append(
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_DIM])
        )
    graph = helper.make_graph(nodes, "vigil_tiny", inputs, outputs, initializer=initializers)
    # IR 9 / opset 17: well inside what every supported onnxruntime (>= 1.17) reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def build_model_dir(tmp_path: Path) -> ModelDirFactory:
    def build(
        *,
        name: str = "tiny-model",
        token_type_ids: bool = False,
        extra_input: str | None = None,
        graph_signals: int | None = None,
        symbolic_signal_dim: bool = True,
        special_tokens: bool = True,
        embedding_output: bool = False,
    ) -> Path:
        model_dir = tmp_path / name
        model_dir.mkdir()
        tokenizer = build_tokenizer(special_tokens=special_tokens)
        tokenizer.save(str(model_dir / "tokenizer.json"))
        graph = build_graph(
            vocab_size=tokenizer.get_vocab_size(),
            signal_count=len(TINY_SIGNALS) if graph_signals is None else graph_signals,
            token_type_ids=token_type_ids,
            extra_input=extra_input,
            symbolic_signal_dim=symbolic_signal_dim,
            embedding_output=embedding_output,
        )
        onnx.save_model(graph, str(model_dir / "model.onnx"))
        (model_dir / "metadata.json").write_text(json.dumps(tiny_metadata(), indent=2), encoding="utf-8")
        return model_dir

    return build


@pytest.fixture
def tiny_model_dir(build_model_dir: ModelDirFactory) -> Path:
    return build_model_dir()


@pytest.fixture
async def tiny_detector(tiny_model_dir: Path) -> AsyncIterator[OnnxDetector]:
    detector = await OnnxDetector.load(tiny_model_dir, intra_op_threads=1)
    try:
        yield detector
    finally:
        await detector.aclose()
