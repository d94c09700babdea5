"""Retrain the message model's heads on its frozen encoder, with modern-style grooming lines added.

    python -m training.message_heads --data /work/shared/data --extra .artifacts/modern_train.jsonl \\
        --model-dir detector/model --out DIR --work DIR [--seed 13] [--extra-weight 1.0] \\
        [--report-extra .artifacts/modern_calib.jsonl]

The 2026.11 heads learned from Perverted-Justice lines only, so they read "what grade r u in" as a weak age
question and "2800 if u add my snap" as nothing at all. This adds the adult's lines of the template
conversations (``training.modern_lines``, TRAIN side only) to ``training.train``'s message training set:

- **risk**: a line that makes a grooming move (``messages[].stage``) is positive; the child's lines and every
  line of a benign look-alike are negatives (the same vocabulary, "add my snap" between teens); the adult's
  small talk carries no risk label, since it is not what makes them risky;
- **signals**: the weak-label regexes plus the signals the stage names (``MODERN_STAGE_SIGNALS``).

The encoder is untouched: the new head weights replace the old fp32 initialisers in ``model.onnx``, so the
embedding output, and every feature cache keyed by text, stays valid. ``work/features.npy`` (the pair
model's cache, ``training.pair_head.FeatureTable``; copy an existing one in to save encoding) is rewritten
with the new heads' logits, ready for ``python -m training.pair_head --work WORK --model OUT --out OUT``
(``--model OUT``: texts new to the cache must be scored by the new heads too), which trains the pair model on
the new features and writes its ``pair_model.onnx`` and metadata into the same ``OUT``.

Reports (``work/message_heads.json``), old heads against new: per-message risk ROC-AUC on the VAL split's PJ
lines (offender against decoy) and on held-out template conversations (a grooming move against the child's
and look-alikes' lines), and per-signal precision and recall against stage labels there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from training.data import (
    Conversation,
    Example,
    Role,
    Split,
    SplitConfig,
    assign_splits,
    load_dataset,
    model_text,
)
from training.pair_head import PAIR_SIGNALS_OUTPUT, FeatureTable, has_explanation_heads, load_extra
from training.weak_labels import MODERN_STAGE_SIGNALS, SIGNAL_NAMES, WeakLabeler
from vigil.detector.onnx_detector import write_golden

# torch, transformers and scikit-learn (the train extra) are imported where they are used, so the labelling
# and the ONNX rewrite below run, and are tested, without them.

logger = logging.getLogger(__name__)

EMBED_DIM = 384
# The head initialisers in model.onnx are "heads." + these torch parameter names; MatMul weights are stored
# [in, out], torch's [out, in].
HEAD_PARAMETERS = (
    "risk.0.weight",
    "risk.0.bias",
    "risk.3.weight",
    "risk.3.bias",
    "signals.0.weight",
    "signals.0.bias",
    "signals.3.weight",
    "signals.3.bias",
)
# Weights of the template lines relative to one another, before the block is balanced.
WEIGHT_CHILD = 3.0  # the child's replies: style-matched negatives, like the PJ decoys
WEIGHT_LOOKALIKE = 2.0  # every line of a benign look-alike conversation


def modern_examples(
    conversations: Sequence[Conversation], *, labeler: WeakLabeler, extra_weight: float
) -> list[Example]:
    """Message examples from template conversations; the block's positives and negatives weigh the same."""
    examples: list[Example] = []
    for conversation in conversations:
        for message in conversation.messages:
            text = model_text(message.text)
            if not text:
                continue
            labels = list(labeler.labels(text))
            for name in MODERN_STAGE_SIGNALS.get(message.stage or "", ()):
                labels[SIGNAL_NAMES.index(name)] = 1
            if conversation.label == 1 and conversation.role(message.author) is Role.OFFENDER:
                risk, weight, role = (1, 1.0, "offender") if message.stage else (0, 0.0, "offender_talk")
            elif conversation.label == 1:
                risk, weight, role = 0, WEIGHT_CHILD, "child"
            else:
                risk, weight, role = 0, WEIGHT_LOOKALIKE, "lookalike"
            examples.append(
                Example(
                    text=text,
                    risk=risk,
                    weight=weight,
                    source=conversation.source,
                    role=role,
                    kind="message",
                    signals=tuple(labels),
                )
            )
    positive = sum(e.weight for e in examples if e.risk == 1)
    negative = sum(e.weight for e in examples if e.risk == 0)
    scale = negative / positive if positive else 1.0
    return [
        dataclasses.replace(e, weight=e.weight * extra_weight * (scale if e.risk == 1 else 1.0))
        for e in examples
    ]


def _embeddings(table: FeatureTable, texts: Sequence[str]) -> np.ndarray:
    ids = [table.id_of(text) for text in texts]
    table.compute_pending()
    return table.matrix()[ids, :EMBED_DIM].astype(np.float32)


def _auc(labels: Sequence[int], scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    if len(set(labels)) < 2:
        return None
    return round(float(roc_auc_score(labels, scores)), 4)


def _signal_report(stage_labels: np.ndarray, logits: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Precision and recall per signal at logit 0 (probability 0.5, the runtime's signal threshold)."""
    out: dict[str, dict[str, float | int]] = {}
    for index, name in enumerate(SIGNAL_NAMES):
        truth = stage_labels[:, index] == 1
        fired = logits[:, index] > 0
        if not truth.any():
            continue
        hits = int((truth & fired).sum())
        out[name] = {
            "lines": int(truth.sum()),
            "recall": round(hits / int(truth.sum()), 3),
            "precision": round(hits / int(fired.sum()), 3) if fired.any() else 0.0,
        }
    return out


def report(
    *,
    old: Any,
    new: Any,
    table: FeatureTable,
    val_conversations: Sequence[Conversation],
    report_conversations: Sequence[Conversation],
    labeler: WeakLabeler,
) -> dict[str, Any]:
    """Old heads against new on PJ VAL lines and on held-out template conversations."""
    from training.train import apply_heads  # noqa: PLC0415

    figures: dict[str, Any] = {}
    pj_texts: list[str] = []
    pj_labels: list[int] = []
    for conversation in val_conversations:
        for message in conversation.messages:
            role, text = conversation.role(message.author), model_text(message.text)
            if role in (Role.OFFENDER, Role.DECOY) and text:
                pj_texts.append(text)
                pj_labels.append(int(role is Role.OFFENDER))
    if pj_texts:
        x = _embeddings(table, pj_texts)
        figures["pj_val_lines"] = {
            "lines": len(pj_texts),
            "risk_roc_auc_old": _auc(pj_labels, apply_heads(old, x)[0]),
            "risk_roc_auc_new": _auc(pj_labels, apply_heads(new, x)[0]),
        }
    held = [
        e for e in modern_examples(report_conversations, labeler=labeler, extra_weight=1.0) if e.weight > 0
    ]
    if held:
        x = _embeddings(table, [e.text for e in held])
        labels = [e.risk for e in held]
        (old_risk, old_signals), (new_risk, new_signals) = apply_heads(old, x), apply_heads(new, x)
        stage_labels = np.array([e.signals for e in held])
        figures["template_lines"] = {
            "lines": len(held),
            "grooming_moves": int(sum(labels)),
            "risk_roc_auc_old": _auc(labels, old_risk),
            "risk_roc_auc_new": _auc(labels, new_risk),
            "signals_old": _signal_report(stage_labels, old_signals),
            "signals_new": _signal_report(stage_labels, new_signals),
        }
    return figures


def head_state(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The heads' weights in ``model``, by torch parameter name and in torch's layout."""
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    missing = [name for name in HEAD_PARAMETERS if f"heads.{name}" not in arrays]
    if missing:
        raise ValueError(f"model.onnx has no head initialisers {missing}: not a training.train export")
    return {
        name: (arrays[f"heads.{name}"].T if name.endswith("weight") else arrays[f"heads.{name}"]).copy()
        for name in HEAD_PARAMETERS
    }


def replace_heads(
    model: onnx.ModelProto,
    state: Mapping[str, np.ndarray],
    *,
    prefix: str = "heads.",
    names: Sequence[str] = HEAD_PARAMETERS,
) -> onnx.ModelProto:
    """A copy of ``model`` with ``state`` (torch layout) in place of its head initialisers ``prefix`` +
    ``names``, shapes checked."""
    out: onnx.ModelProto = onnx.ModelProto.FromString(model.SerializeToString())
    replaced = set()
    for initializer in out.graph.initializer:
        name = initializer.name.removeprefix(prefix)
        if name not in names or not initializer.name.startswith(prefix):
            continue
        value = np.asarray(state[name], dtype=np.float32)
        if name.endswith("weight"):
            value = value.T
        old = numpy_helper.to_array(initializer)
        if old.shape != value.shape:
            raise ValueError(
                f"{initializer.name}: the model has shape {old.shape}, the new heads {value.shape}"
            )
        initializer.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), initializer.name))
        replaced.add(name)
    if replaced != set(names):
        raise ValueError(f"model.onnx lacks head initialisers {sorted(set(names) - replaced)}")
    return out


def with_new_heads(model: onnx.ModelProto, state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` with new risk and signal heads everywhere: a model with explanation heads gets the new
    signals in its pair model's copy too, so that it serves the features the cache is rewritten with."""
    out = replace_heads(model, state)
    if has_explanation_heads(o.name for o in out.graph.output):
        signals = [name for name in HEAD_PARAMETERS if name.startswith("signals.")]
        out = replace_heads(out, state, prefix="pair_heads.", names=signals)
    return out


def with_explanation_heads(model: onnx.ModelProto, state: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose ``signal_logits`` (what alerts explain with) come from ``state``'s signal
    heads, and whose old signal heads live on as ``pair_signal_logits``, the features the pair model was
    trained on. The risk head and the encoder stay as they are. A model that has ``pair_signal_logits``
    already keeps them and only gets new explanation heads."""
    out: onnx.ModelProto = onnx.ModelProto.FromString(model.SerializeToString())
    if not has_explanation_heads(o.name for o in out.graph.output):
        _copy_signal_heads(out)
    # New explanation weights where the old ones were; the risk head keeps its own.
    current = head_state(out)
    merged = {
        name: (state[name] if name.startswith("signals.") else current[name]) for name in HEAD_PARAMETERS
    }
    out = replace_heads(out, merged)
    onnx.checker.check_model(out)
    return out


def _copy_signal_heads(out: onnx.ModelProto) -> None:
    """Add a copy of ``out``'s signal heads, with their weights, that writes ``pair_signal_logits``."""
    signal_nodes = [n for n in out.graph.node if n.name.startswith("/heads/signals/")]
    produced = {name for n in signal_nodes for name in n.output}
    if "signal_logits" not in produced:
        raise ValueError("model.onnx has no /heads/signals/ nodes producing signal_logits")

    def renamed(name: str) -> str:
        if name in {"signal_logits", "signal_logits_MatMul"} or name.startswith("heads.signals."):
            return "pair_" + name
        if name in produced:
            return name.replace("/heads/signals/", "/pair_heads/signals/", 1)
        return name  # the encoder's output, read by both copies

    for node in signal_nodes:
        node_copy = onnx.NodeProto()
        node_copy.CopyFrom(node)
        node_copy.name = node.name.replace("/heads/signals/", "/pair_heads/signals/", 1)
        node_copy.input[:] = [renamed(name) for name in node.input]
        node_copy.output[:] = [renamed(name) for name in node.output]
        out.graph.node.append(node_copy)
    for initializer in [i for i in out.graph.initializer if i.name.startswith("heads.signals.")]:
        tensor_copy = onnx.TensorProto()
        tensor_copy.CopyFrom(initializer)
        tensor_copy.name = "pair_" + initializer.name
        out.graph.initializer.append(tensor_copy)
    pair_output = onnx.ValueInfoProto()
    pair_output.CopyFrom(next(o for o in out.graph.output if o.name == "signal_logits"))
    pair_output.name = PAIR_SIGNALS_OUTPUT
    out.graph.output.append(pair_output)


def _torch_heads(state: Mapping[str, np.ndarray], config: Any) -> Any:
    import torch  # noqa: PLC0415

    from training.train import build_heads  # noqa: PLC0415

    heads = build_heads(config, len(SIGNAL_NAMES))
    heads.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in state.items()})
    heads.eval()
    return heads


def _numpy_state(heads: Any) -> dict[str, np.ndarray]:
    return {name: value.detach().numpy().copy() for name, value in heads.state_dict().items()}


def rewrite_feature_logits(table: FeatureTable, heads: Any, *, model_dir: Path) -> None:
    """Replace the cached signal and risk logits of every text with the new heads' (embeddings stay)."""
    from training.train import apply_heads  # noqa: PLC0415

    matrix = table.matrix().copy()
    risk, signals = apply_heads(heads, matrix[:, :EMBED_DIM].astype(np.float32))
    matrix[:, EMBED_DIM : EMBED_DIM + len(SIGNAL_NAMES)] = signals
    matrix[:, EMBED_DIM + len(SIGNAL_NAMES)] = risk
    if matrix.shape[1] > EMBED_DIM + len(SIGNAL_NAMES) + 1:
        # The explanation heads' columns (pair_head.message_features): with_new_heads gave them these heads.
        matrix[:, -len(SIGNAL_NAMES) :] = signals
    table.replace_matrix(matrix, model_dir=model_dir)


def check_explanations_only(metadata: Mapping[str, Any]) -> None:
    """``--explanations-only`` promises alerts decided as before; a pair model that reads the explanation
    heads' signals (metadata ``pair_model.explanation_signals``) would be fed new inputs it was not trained
    on, so that promise cannot hold."""
    if metadata.get("pair_model", {}).get("explanation_signals"):
        raise ValueError(
            "--explanations-only: this model's pair model reads the explanation signals too "
            "(metadata.json pair_model.explanation_signals), so new explanation heads would change its "
            "alerts; retrain both heads (drop --explanations-only), then the pair model (training.pair_head)"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from training.train import TrainConfig, build_training_set, train_heads  # noqa: PLC0415

    if args.explanations_only:
        check_explanations_only(json.loads((args.model_dir / "metadata.json").read_text(encoding="utf-8")))
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(seed=args.seed)
    labeler = WeakLabeler.default()
    dataset = load_dataset([args.data])
    splits = assign_splits(dataset.conversations, config=SplitConfig(seed=args.seed))
    examples = build_training_set(dataset, splits, config, labeler)
    extra = modern_examples(load_extra(args.extra), labeler=labeler, extra_weight=args.extra_weight)
    logger.info(
        "message examples: %d from the data, %d from template conversations", len(examples), len(extra)
    )
    examples += extra

    table = FeatureTable(model_dir=args.model_dir, work=work)
    x = _embeddings(table, [e.text for e in examples])
    model = onnx.load(str(args.model_dir / "model.onnx"))
    old = _torch_heads(head_state(model), config)
    new = train_heads(x, examples, config)

    val = [c for c in dataset.conversations if splits[c.id] == Split.VAL and c.label == 1]
    figures = report(
        old=old,
        new=new,
        table=table,
        val_conversations=val,
        report_conversations=load_extra(args.report_extra),
        labeler=labeler,
    )
    figures["examples"] = {"data": len(examples) - len(extra), "templates": len(extra)}
    (work / "message_heads.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    out: Path = args.out
    if out.resolve() != args.model_dir.resolve():
        shutil.copytree(args.model_dir, out, dirs_exist_ok=True)
    metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    if args.version:
        metadata["version"] = args.version
    if args.explanations_only:
        # The pair model keeps its features (and needs no retraining); alerts explain with the new signals.
        onnx.save_model(with_explanation_heads(model, _numpy_state(new)), str(out / "model.onnx"))
        metadata["pair_model"]["signals_output"] = PAIR_SIGNALS_OUTPUT
    else:
        onnx.save_model(with_new_heads(model, _numpy_state(new)), str(out / "model.onnx"))
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    write_golden(out)
    if args.explanations_only:
        logger.info("wrote %s: new signal heads for explanations, the pair model's features unchanged", out)
        return figures
    rewrite_feature_logits(table, new, model_dir=out)
    logger.info("wrote %s; pair-model features in %s carry the new heads' logits", out, work)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--extra", type=Path, nargs="+", required=True, help="template conversations (train)")
    parser.add_argument(
        "--report-extra",
        type=Path,
        nargs="*",
        default=[],
        help="held-out template conversations to report on",
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path("detector/model"), help="the model to start from"
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--work", type=Path, required=True, help="feature cache and report")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--extra-weight", type=float, default=1.0, help="template lines' weight, data = 1")
    parser.add_argument("--version", default=None, help="metadata version of the written model")
    parser.add_argument(
        "--explanations-only",
        action="store_true",
        help="serve the new signal heads as explanations only; the pair model keeps the old features",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    figures = run(args)
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
