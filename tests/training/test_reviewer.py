"""The window reviewer (``training.reviewer``): how a window is encoded, where windows end (the same in every
process), and (with torch) the fine-tuning, the ONNX export and the command end to end on a tiny encoder."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from training.pair_head import CandidateSequence
from training.reviewer import (
    COLD_SHARE_GROOMING,
    COLD_SHARE_OTHER,
    HOT_NEGATIVE_WEIGHT,
    Window,
    class_weights,
    encode_windows,
    length_batches,
    pick_steps,
    window_rng,
    windows_of,
)

REPO = Path(__file__).resolve().parents[2]
WORDS = ("a", "b", "c", "d", "e", "hello", "secret", "groom", "calm", "tonight")
ENCODER_VOCAB = 64


def small_tokenizer() -> Tokenizer:
    vocab_words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "me", "them", ":", *WORDS]
    tokenizer = Tokenizer(
        models.WordLevel(vocab={w: i for i, w in enumerate(vocab_words)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def encode(lines: list[tuple[bool, str]], *, max_length: int = 128, message_tokens: int = 40) -> list[str]:
    tokenizer = small_tokenizer()
    (ids,) = encode_windows(
        [lines], tokenizer=tokenizer, max_length=max_length, message_tokens=message_tokens
    )
    return [tokenizer.id_to_token(i) for i in ids]


def test_a_window_is_cls_then_each_message_with_its_prefix_then_sep() -> None:
    assert encode([(True, "hello"), (False, "a b"), (True, "secret")]) == [
        "[CLS]", "me", ":", "hello", "them", ":", "a", "b", "me", ":", "secret", "[SEP]",
    ]  # fmt: skip
    assert encode([]) == ["[CLS]", "[SEP]"]


def test_each_message_keeps_at_most_its_first_tokens() -> None:
    assert encode([(False, "a b c d e"), (True, "e d")], message_tokens=3) == [
        "[CLS]", "them", ":", "a", "b", "c", "me", ":", "e", "d", "[SEP]",
    ]  # fmt: skip


def test_the_oldest_messages_go_first_and_only_whole_messages_are_read() -> None:
    lines = [(True, "a"), (False, "b b b b"), (True, "c"), (False, "d")]
    # 2 special + 3 + 3 tokens fit in 8; "b b b b" (6) does not, and nothing older is read either, though
    # "a" (3) would fit.
    assert encode(lines, max_length=9) == ["[CLS]", "me", ":", "c", "them", ":", "d", "[SEP]"]
    assert encode(lines, max_length=14) == [
        "[CLS]", "them", ":", "b", "b", "b", "b", "me", ":", "c", "them", ":", "d", "[SEP]",
    ]  # fmt: skip
    assert len(encode(lines, max_length=17)) == 17  # all of it


def test_encoding_refuses_a_padding_tokenizer() -> None:
    tokenizer = small_tokenizer()
    tokenizer.enable_padding()
    with pytest.raises(ValueError, match="without padding"):
        encode_windows([[(True, "a")]], tokenizer=tokenizer)


def sequence(conversation: str, candidate: str, own: list[int], label: int = 0) -> CandidateSequence:
    return CandidateSequence(
        conversation_id=conversation,
        source="test",
        label=label,
        text_ids=np.arange(len(own), dtype=np.int64),
        own=np.array(own, dtype=np.float32),
        weight=1.0,
        pair_id=f"{conversation}:a|b",
        candidate=candidate,
        interleaved=True,
    )


def test_hot_windows_end_at_own_messages_from_the_second_on() -> None:
    own = np.array([1, 0, 1, 1, 0, 1, 0], dtype=np.float32)
    risk = np.full(7, 0.9)
    steps, hot = pick_steps(own, risk, label=1, rng=random.Random(0))
    assert hot and sorted(steps) == [2, 3, 5]
    risk[3] = 0.2
    steps, hot = pick_steps(own, risk, label=0, rng=random.Random(0), hot_picks=1)
    assert hot and len(steps) == 1 and steps[0] in (2, 5)
    assert pick_steps(np.array([0, 1, 0], dtype=np.float32), np.ones(3), label=1, rng=random.Random(0)) == (
        [],
        False,
    )


def test_without_a_hot_step_a_share_of_the_members_give_one_window() -> None:
    own = np.array([1, 0, 1, 1, 0, 1], dtype=np.float32)
    risk = np.full(6, 0.3)
    for label, share in ((1, COLD_SHARE_GROOMING), (0, COLD_SHARE_OTHER)):
        picks = [pick_steps(own, risk, label=label, rng=random.Random(seed)) for seed in range(3000)]
        assert all(not hot and len(steps) <= 1 and set(steps) <= {2, 3, 5} for steps, hot in picks)
        assert abs(sum(len(steps) for steps, _ in picks) / 3000 - share) < 0.03


def test_the_picks_come_from_the_crc32_of_conversation_and_member() -> None:
    expected = random.Random(zlib.crc32(b"c1\x00u-a")).random()
    assert window_rng("c1", "u-a").random() == expected
    assert window_rng("c1", "u-a", seed=1).random() != expected


PICKS_SCRIPT = """
import json, sys
import numpy as np
from training.pair_head import CandidateSequence
from training.reviewer import windows_of
sequences = [
    CandidateSequence(conversation_id=f"conv-{n}", source="test", label=n % 2, text_ids=np.arange(30),
        own=np.array([(t + n) % 3 != 0 for t in range(30)], dtype=np.float32), weight=1.0,
        pair_id=f"conv-{n}:a|b", candidate=f"member-{n}", interleaved=True)
    for n in range(60)
]
logits = [np.linspace(-2.0, 2.0, 30) if n % 3 else np.full(30, -1.0) for n in range(60)]
texts = [f"text {i}" for i in range(30)]
windows = windows_of(sequences, logits, texts=texts, window=5)
json.dump([w.to_json() for w in windows], sys.stdout)
"""


def test_the_windows_are_the_same_in_every_process() -> None:
    runs = []
    for hash_seed in ("1", "2"):
        completed = subprocess.run(
            [sys.executable, "-c", PICKS_SCRIPT],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        runs.append(json.loads(completed.stdout))
    assert runs[0] == runs[1]
    assert len(runs[0]) > 20
    assert any(w["hot"] for w in runs[0]) and not all(w["hot"] for w in runs[0])
    for w in runs[0]:
        assert 1 <= len(w["lines"]) <= 5 and w["lines"][-1][0] == 1  # ends at the member's own message


def test_a_window_is_the_last_messages_up_to_its_step() -> None:
    seqs = [sequence("c", "u", [1, 0, 1, 0, 1, 1], label=1)]
    logits = [np.array([5.0, 5.0, -5.0, -5.0, -5.0, 5.0])]
    (window,) = windows_of(seqs, logits, texts=[f"t{i}" for i in range(6)], window=3)
    assert window.hot and window.label == 1 and window.risk > 0.99
    assert window.lines == ((False, "t3"), (True, "t4"), (True, "t5"))
    assert Window.from_json(json.loads(json.dumps(window.to_json()))) == window


def window(label: int, hot: bool, lines: tuple[tuple[bool, str], ...] = ((True, "a"),)) -> Window:
    return Window(
        conversation_id="c",
        source="s",
        candidate="u",
        label=label,
        weight=1.0,
        risk=0.5,
        hot=hot,
        lines=lines,
    )


def test_hot_negatives_weigh_double_and_the_classes_the_same() -> None:
    labels, weights = class_weights([window(0, True), window(0, False), window(1, True), window(0, False)])
    assert labels.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert weights[0] == HOT_NEGATIVE_WEIGHT and weights[1] == 1.0
    assert weights[labels == 1].sum() == pytest.approx(weights[labels == 0].sum())


def test_batches_hold_every_window_once_in_runs_of_similar_lengths() -> None:
    lengths = [random.Random(i).randint(3, 128) for i in range(100)]
    batches = length_batches(lengths, batch_size=8, bucket_batches=4, rng=random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert all(len(batch) <= 8 for batch in batches) and len(batches) == 13
    assert batches == length_batches(lengths, batch_size=8, bucket_batches=4, rng=random.Random(0))
    for batch in batches:
        assert [lengths[i] for i in batch] == sorted(lengths[i] for i in batch)


# ============================================================================================ torch


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")  # training extra
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("encoder")
    config = transformers.BertConfig(
        vocab_size=ENCODER_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
    return path


def toy_windows(count: int, *, seed: int) -> list[Window]:
    """Grooming members say "groom" or "secret"; the others "hello" or "calm"; both say filler."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        label = n % 2
        words = ("groom", "secret") if label else ("hello", "calm")
        said = [
            (own, " ".join(rng.choice((*words, "a", "b")) if own else rng.choice("cde") for _ in range(3)))
            for own in (rng.random() < 0.6 for _ in range(rng.randint(2, 6)))
        ]
        lines = (*said, (True, rng.choice(words)))
        out.append(window(label, bool(n % 3 == 0), lines))
    return out


def test_training_learns_frozen_embeddings_and_repeats(encoder: Path) -> None:
    import torch  # noqa: PLC0415

    from training.reviewer import TrainConfig, build_reviewer, score_windows, train_reviewer  # noqa: PLC0415

    tokenizer = small_tokenizer()
    train, validation = toy_windows(96, seed=1), toy_windows(32, seed=2)
    train_ids = encode_windows([w.lines for w in train], tokenizer=tokenizer)
    validation_ids = encode_windows([w.lines for w in validation], tokenizer=tokenizer)
    config = TrainConfig(epochs=3, batch_size=8, learning_rate=2e-3, warmup_steps=2, seed=0, log_every=0)
    scores = []
    for _ in range(2):
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = build_reviewer(encoder)
        embeddings = model.bert.embeddings.word_embeddings.weight.detach().clone()
        layer = model.bert.encoder.layer[0].output.dense.weight.detach().clone()
        report = train_reviewer(
            model,
            train=train,
            train_ids=train_ids,
            validation=validation,
            validation_ids=validation_ids,
            config=config,
        )
        assert torch.equal(model.bert.embeddings.word_embeddings.weight, embeddings)
        assert not torch.equal(model.bert.encoder.layer[0].output.dense.weight, layer)
        scores.append(score_windows(model, validation_ids))
    assert [epoch["epoch"] for epoch in report] == [1, 2, 3]
    assert report[-1]["train_loss"] < report[0]["train_loss"]
    assert report[-1]["roc_auc"] > 0.9 and report[-1]["hot_roc_auc"] is not None
    np.testing.assert_array_equal(scores[0], scores[1])


def test_the_onnx_export_reads_as_torch_does(encoder: Path, tmp_path: Path) -> None:
    import onnxruntime as ort  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from training.reviewer import build_reviewer, export_onnx, pad_batch  # noqa: PLC0415

    torch.manual_seed(3)
    model = build_reviewer(encoder)
    path = tmp_path / "reviewer.onnx"
    export_onnx(model, path)
    encodings = encode_windows([w.lines for w in toy_windows(12, seed=4)], tokenizer=small_tokenizer())
    ids, mask = pad_batch(encodings)  # padded to the longest: the mask must hide the padding
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    (logit,) = session.run(["logit"], {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        expected = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert logit.shape == (12,)
    np.testing.assert_allclose(logit, expected, atol=1e-4)
    alone = session.run(
        ["logit"],
        {"input_ids": ids[:1, : len(encodings[0])], "attention_mask": mask[:1, : len(encodings[0])]},
    )
    np.testing.assert_allclose(alone[0], expected[:1], atol=1e-4)


# ------------------------------------------------------------------------------------ end to end

CUES = "behaviour_v7"


def model_dir(path: Path) -> Path:
    """A keyword message model whose tokenizer knows [CLS], [SEP] and the prefixes, and an accumulating GRU
    pair model: a member's risk rises with their own grooming words ("groom", "secret")."""
    from tests.support.gru_model import accumulating_weights, add_gru_pair_model  # noqa: PLC0415
    from tests.support.keyword_model import DEFAULT_WEIGHTS, SIGNALS, build_keyword_model  # noqa: PLC0415

    extra = {"[CLS]": 0.0, "[SEP]": 0.0, "me": 0.0, "them": 0.0, ":": 0.0}
    build_keyword_model(path, weights={**DEFAULT_WEIGHTS, **extra}, embedding_size=4, name="reviewer-test")
    add_gru_pair_model(path, accumulating_weights(feature_size=4 + len(SIGNALS) + 1, state_size=6))
    metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    metadata["pair_model"].update(text_cues=CUES, members=["full"])
    (path / "metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return path


def conversations(prefix: str, count: int) -> list[dict[str, Any]]:
    """Grooming pairs, pairs whose one member keeps a secret about a game (hot too), and ordinary pairs."""
    lines = {
        "grooming": ("groom secret", "secret age"),
        "secret": ("secret game tonight", "ok lol"),
        "ordinary": ("hello there", "nice game"),
    }
    out = []
    for n in range(count):
        kind = ("grooming", "secret", "ordinary")[n % 3]
        first, second = f"{prefix}-a{n}", f"{prefix}-b{n}"
        messages = []
        for i in range(10):
            author = (first, second)[i % 2]
            text = (
                lines[kind][0]
                if author == first and i % 4 != 2
                else ("see you later", "calm ok lol")[i % 3 % 2]
            )
            messages.append({"author": author, "text": text, "ts": None, "reply_to": None})
        out.append(
            {
                "id": f"{prefix}-{n}",
                "source": "vigil_written_train",
                "label": int(kind == "grooming"),
                "setting": "dm",
                "interleaved": True,
                "suspects": [first] if kind == "grooming" else [],
                "messages": messages,
            }
        )
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_the_command_writes_a_reviewer_that_reads_as_it_reports(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort  # noqa: PLC0415

    from training import reviewer  # noqa: PLC0415

    model = model_dir(tmp_path / "model")
    data = tmp_path / "data"
    write_jsonl(data / "conversations.jsonl", conversations("d", 30))
    extra = write_jsonl(tmp_path / "extra.jsonl", conversations("x", 12))
    val_extra = write_jsonl(tmp_path / "val.jsonl", conversations("v", 9))
    work, out = tmp_path / "work", tmp_path / "out"
    argv = [
        "--data", str(data), "--extra", str(extra), "--val-extra", str(val_extra), "--model", str(model),
        "--work", str(work), "--encoder", str(encoder), "--out", str(out), "--epochs", "1", "--threads", "1",
        "--window", "6", "--max-length", "48",
    ]  # fmt: skip
    assert reviewer.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    description = json.loads((out / "reviewer.json").read_text(encoding="utf-8"))
    assert description["file"] == "reviewer.onnx" and description["pooling"] == "mean"
    assert description["threshold"] == 0.3
    assert (description["max_length"], description["window_messages"], description["message_tokens"]) == (
        48,
        6,
        40,
    )
    assert (description["own_prefix"], description["other_prefix"]) == ("me:", "them:")
    assert description["sha256"] == hashlib.sha256((out / "reviewer.onnx").read_bytes()).hexdigest()
    assert description["validation"] == report["validation"]
    assert len(report["training"]["epochs"]) == 1 and report["training"]["epochs"][0]["roc_auc"] is not None
    assert report["training"]["windows"]["train"]["hot"] > 0
    assert report["validation"]["export_max_difference"] < 1e-4

    # The golden windows read as recorded, alone, the way serving reads them.
    tokenizer = reviewer.reviewer_tokenizer(model / "tokenizer.json")
    session = ort.InferenceSession(str(out / "reviewer.onnx"), providers=["CPUExecutionProvider"])
    for golden in description["golden"]:
        (ids,) = encode_windows(
            [[(bool(o), t) for o, t in golden["lines"]][-6:]], tokenizer=tokenizer, max_length=48
        )
        (logit,) = session.run(
            ["logit"], {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), np.int64)}
        )
        assert 1 / (1 + np.exp(-float(logit[0]))) == pytest.approx(golden["probability"], abs=1e-5)

    # The windows are kept in --work and read back, not built again, while their inputs are unchanged.
    kept = {name: (work / f"windows_{name}.jsonl").read_text(encoding="utf-8") for name in ("train", "val")}
    assert all(kept.values())

    def refuse(**_: Any) -> Any:
        raise AssertionError("built again")

    monkeypatch.setattr(reviewer, "build_windows", refuse)
    inputs = {
        "data": data, "extra": [extra], "val_extra": [val_extra], "model_dir": model, "work": work,
        "window": 6, "seed": 0, "threads": 1,
    }  # fmt: skip
    again = reviewer.cached_windows(**inputs)
    assert [w.to_json() for w in again["train"]] == [json.loads(line) for line in kept["train"].splitlines()]
    with pytest.raises(AssertionError, match="built again"):
        reviewer.cached_windows(**{**inputs, "window": 5})
    with pytest.raises(AssertionError, match="built again"):
        reviewer.cached_windows(**inputs, rebuild=True)
