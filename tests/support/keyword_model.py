"""A tiny but real model directory whose risk is driven by keywords, so tests control scores through text.

risk_logit = bias + sum of the message's word weights; signal_logits = -4 + 8 * (signal keyword present).
It follows the production model-directory contract exactly (model.onnx, tokenizer.json, metadata.json).
With ``embedding_size``, model.onnx also gives an ``embedding`` output [batch, embedding_size] (the sum of
seeded random token vectors), what a learned pair model reads (``tests.support.gru_model``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

SIGNALS = (("asks_age", "asks the other person's age"), ("secrecy", "asks to keep the conversation secret"))
DEFAULT_WEIGHTS: Mapping[str, float] = {"groom": 6.0, "secret": 6.0, "age": 2.0, "calm": -2.0}
SIGNAL_WORDS: Mapping[str, str] = {"age": "asks_age", "secret": "secrecy"}
FILLER = ("hello", "there", "game", "tonight", "ok", "lol", "nice", "see", "you", "later", "sister")


def build_keyword_model(
    directory: Path,
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    bias: float = -3.0,
    threshold: float = 0.7,
    alpha: float = 0.5,
    min_messages: int = 2,
    sustain_messages: int = 2,
    name: str = "keyword-test-model",
    embedding_size: int = 0,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    vocab_words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        *sorted(set(weights) | set(SIGNAL_WORDS) | set(FILLER)),
    ]
    vocab = {word: index for index, word in enumerate(vocab_words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(directory / "tokenizer.json"))

    token_weight = np.zeros(len(vocab_words), dtype=np.float32)
    for word, weight in weights.items():
        token_weight[vocab[word]] = weight
    signal_hit = np.zeros((len(vocab_words), len(SIGNALS)), dtype=np.float32)
    signal_index = {name: i for i, (name, _) in enumerate(SIGNALS)}
    for word, signal in SIGNAL_WORDS.items():
        signal_hit[vocab[word], signal_index[signal]] = 1.0

    nodes = [
        helper.make_node("Gather", ["token_weight", "input_ids"], ["w"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["w", "mask"], ["wm"]),
        helper.make_node("ReduceSum", ["wm", "axis1"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["risk_logit"]),
        helper.make_node("Gather", ["signal_hit", "input_ids"], ["s"]),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["s", "mask3"], ["sm"]),
        helper.make_node("ReduceMax", ["sm"], ["present"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["present", "eight"], ["scaled"]),
        helper.make_node("Add", ["scaled", "minus_four"], ["signal_logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "keyword_model",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info("risk_logit", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("signal_logits", TensorProto.FLOAT, ["batch", len(SIGNALS)]),
        ],
        initializer=[
            numpy_helper.from_array(token_weight, "token_weight"),
            numpy_helper.from_array(signal_hit, "signal_hit"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
            numpy_helper.from_array(np.array(bias, dtype=np.float32), "bias"),
            numpy_helper.from_array(np.array(8.0, dtype=np.float32), "eight"),
            numpy_helper.from_array(np.array(-4.0, dtype=np.float32), "minus_four"),
        ],
    )
    if embedding_size:
        token_vectors = np.random.default_rng(3).normal(size=(len(vocab_words), embedding_size))
        graph.initializer.append(numpy_helper.from_array(token_vectors.astype(np.float32), "token_vectors"))
        graph.node.extend(
            [
                helper.make_node("Gather", ["token_vectors", "input_ids"], ["v"]),
                helper.make_node("Mul", ["v", "mask3"], ["vm"]),
                helper.make_node("ReduceSum", ["vm", "axis1"], ["embedding"], keepdims=0),
            ]
        )
        graph.output.append(
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", embedding_size])
        )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / "model.onnx"))
    metadata = {
        "format": 1,
        "name": name,
        "version": "test",
        "max_length": 32,
        "outputs": {"risk": "risk_logit", "signals": "signal_logits"},
        "signals": [{"name": n, "label": label} for n, label in SIGNALS],
        "signal_threshold": 0.5,
        "default_threshold": threshold,
        "pair_model": {"type": "ema", "alpha": alpha, "min_messages": min_messages},
        "policy_defaults": {"sustain_messages": sustain_messages},
        "training_data": [],
        "metrics": {},
        "known_biases": ["test model: keywords only"],
        "intended_use": "tests",
    }
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return directory


def add_keyword_reviewer(
    directory: Path,
    *,
    word_weights: Mapping[str, float],
    bias: float = 3.0,
    threshold: float = 0.5,
    window_messages: int = 24,
    max_length: int = 128,
    golden: bool = True,
) -> Path:
    """Give a keyword model directory an alert reviewer (``vigil.detector.reviewer``): a real ONNX graph
    whose logit is ``bias`` + the weights of the words in the window it reads (``word_weights``, each a word
    of the keyword model's vocabulary), so tests hold alerts back through text ("sister")."""
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    weight = np.zeros(len(vocab), dtype=np.float32)
    for word, value in word_weights.items():
        weight[vocab[word]] = value
    nodes = [
        helper.make_node("Gather", ["word_weight", "input_ids"], ["w"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["w", "mask"], ["wm"]),
        helper.make_node("ReduceSum", ["wm", "axis1"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "keyword_reviewer",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])],
        initializer=[
            numpy_helper.from_array(weight, "word_weight"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array(bias, dtype=np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / "reviewer.onnx"))
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    metadata["reviewer"] = {
        "file": "reviewer.onnx",
        "threshold": threshold,
        "max_length": max_length,
        "window_messages": window_messages,
        "message_tokens": 40,
        "own_prefix": "me:",
        "other_prefix": "them:",
    }
    if golden:
        hold = min(word_weights, key=lambda word: word_weights[word])
        logit = bias + word_weights[hold]
        metadata["reviewer"]["golden"] = [
            {"lines": [[True, "hello"], [False, hold]], "probability": float(1 / (1 + np.exp(-logit)))}
        ]
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return directory
