"""Conversation records and config files for the tests that drive the ``vigil`` command line."""

from __future__ import annotations

import json
import lzma
from pathlib import Path


def write_config(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    config = tmp_path / "vigil.toml"
    config.write_text(
        f'[storage]\ndatabase = "vigil.sqlite3"\n'
        f'[detector]\nmodel_dir = "{model_dir}"\nintra_op_threads = 1\n{extra}',
        encoding="utf-8",
    )
    return config


def conversation(
    record_id: str, *, label: int, lines: list[tuple[str, str]], source: str = "test"
) -> dict[str, object]:
    authors = [author for author, _ in lines]
    return {
        "id": record_id,
        "source": source,
        "label": label,
        "setting": "dm",
        "interleaved": True,
        "suspects": [authors[0]] if label else [],
        "messages": [{"author": a, "text": t, "reply_to": None, "ts": None} for a, t in lines],
    }


def grooming(record_id: str, *, adult: str = "u-adult", kid: str = "u-kid") -> dict[str, object]:
    lines = [(adult, "secret groom") if i % 2 == 0 else (kid, "ok lol") for i in range(12)]
    return conversation(record_id, label=1, lines=lines)


def ordinary(record_id: str) -> dict[str, object]:
    lines = [
        ("u-a", "hello there game tonight") if i % 2 == 0 else ("u-b", "nice see you later")
        for i in range(12)
    ]
    return conversation(record_id, label=0, lines=lines)


def write_jsonl(path: Path, records: list[dict[str, object]], *, extra_lines: tuple[str, ...] = ()) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records) + "".join(line + "\n" for line in extra_lines)
    if path.suffix == ".xz":
        with lzma.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
