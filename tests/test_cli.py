"""The ``vigil`` command line, run in-process through ``main`` with real files and a real ONNX model."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
from pathlib import Path

import pytest

from tests.importers.exports import (
    discord_author,
    discord_export,
    discord_message,
    slack_workspace,
    write_json,
    write_slack_zip,
)
from tests.support.cli_data import grooming, ordinary, write_config, write_jsonl
from vigil.bots import progress
from vigil.bots.cli import build_parser, main, with_shard_options
from vigil.config.settings import load_settings
from vigil.detector.metrics import CONVERSATION_METRIC_KEYS


def test_check_config_reports_unknown_keys_with_their_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[policy]\ntreshold = 0.5\n", encoding="utf-8")
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "policy.treshold" in err and "threshold" in err


def test_config_and_log_level_work_before_and_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--config", "my-vigil.toml"]).config == "my-vigil.toml"
    assert parser.parse_args(["--config", "my-vigil.toml", "run"]).config == "my-vigil.toml"
    assert parser.parse_args(["-c", "a.toml", "status", "-c", "b.toml"]).config == "b.toml"
    assert parser.parse_args(["run"]).config is None
    assert parser.parse_args(["cases", "--log-level", "debug"]).log_level == "debug"
    assert parser.parse_args(["eval", "--data", "x.jsonl", "-c", "my-vigil.toml"]).config == "my-vigil.toml"
    assert parser.parse_args(["scan", "export.zip", "--config", "my-vigil.toml"]).config == "my-vigil.toml"
    config = tmp_path / "bad.toml"
    config.write_text("[policy]\ntreshold = 0.5\n", encoding="utf-8")
    assert main(["check-config", "--config", str(config)]) == 2
    assert "policy.treshold" in capsys.readouterr().err


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"vigil {importlib.metadata.version('vigil')}"


def test_every_command_explains_itself_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    subcommands = next(
        action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    for name in subcommands.choices:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        shown = capsys.readouterr().out
        assert "examples:" in shown and f"vigil {name}" in shown.split("examples:")[1], name
        assert shown.split("\n\n")[1].strip().endswith("."), name  # a description, not only usage


def test_check_config_names_what_an_enabled_platform_needs(
    tmp_path: Path,
    keyword_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VIGIL_DISCORD_TOKEN", raising=False)
    config = write_config(tmp_path, keyword_model_dir, "[discord]\nenabled = true\n")
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "VIGIL_DISCORD_TOKEN" in out and "keyword-test-model" in out


def test_check_config_refuses_secret_values_that_run_would_refuse(
    tmp_path: Path,
    keyword_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, keyword_model_dir, "[http]\nenabled = true\n")
    monkeypatch.setenv("VIGIL_HTTP_SECRET", "short-secret")
    monkeypatch.setenv("VIGIL_ENCRYPTION_KEY", "bm90LTMyLWJ5dGVz")
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "VIGIL_HTTP_SECRET holds 12 characters; it must hold at least 16" in out
    assert "VIGIL_ENCRYPTION_KEY: decodes to 12 bytes, expected 32" in out
    assert "short-secret" not in out and "bm90LTMyLWJ5dGVz" not in out
    assert not (tmp_path / "vigil.sqlite3").exists()
    monkeypatch.setenv("VIGIL_HTTP_SECRET", "a-long-enough-shared-secret")
    monkeypatch.setenv("VIGIL_ENCRYPTION_KEY", "A" * 43)
    assert main(["check-config", str(config)]) == 0


def test_check_config_with_a_missing_model_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "no-such-model")
    assert main(["check-config", str(config)]) == 1
    assert "no-such-model" in capsys.readouterr().out


def test_scan_prints_alerts_and_a_summary_and_resumes_without_duplicates(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(
        tmp_path / "chats.jsonl.xz",
        [grooming("c-1"), ordinary("c-2"), grooming("c-3", adult="u-adult-2", kid="u-kid-2")],
        extra_lines=("{not json", '{"id": "broken"}'),
    )
    config = write_config(tmp_path, keyword_model_dir)
    db = tmp_path / "scan.sqlite3"
    summary = tmp_path / "summary.json"
    args = [
        "--config",
        str(config),
        "scan",
        str(data),
        "--db",
        str(db),
        "--json",
        "--summary-json",
        str(summary),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    alerts = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    new_alerts = [a for a in alerts if not a["updated"]]
    assert sorted(a["suspect_id"] for a in new_alerts) == ["u-adult", "u-adult-2"]
    assert "2 bad records skipped" in captured.err and ":4:" in captured.err
    first = json.loads(summary.read_text())
    assert first["messages"] == 36 and first["alerts"] == 2 and first["bad_records"] == 2

    # A second run over the same file changes nothing: every message id was already seen.
    assert main(args) == 0
    again = json.loads(summary.read_text())
    assert again["alerts"] == 0 and again["pairs"] == first["pairs"]


def test_scan_and_eval_show_the_share_done_on_stderr(
    tmp_path: Path,
    keyword_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line at every step of this short run
    first = write_jsonl(tmp_path / "a.jsonl", [grooming("c-1"), ordinary("c-2")])
    second = write_jsonl(tmp_path / "b.jsonl.xz", [ordinary("c-3")])
    config = write_config(tmp_path, keyword_model_dir)
    scan = ["--config", str(config), "scan", str(first), str(second), "--db", str(tmp_path / "s.sqlite3")]
    assert main(scan) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("scan: ")]
    shape = re.compile(
        r"scan: (\d+)% · [\d,]+ conversations, [\d,]+ messages · [\d,]+ msg/s( · about .+ left)?"
    )
    assert lines and all(shape.fullmatch(line) for line in lines), lines
    shares = [int(match[1]) for line in lines if (match := shape.fullmatch(line))]
    # As the bytes are read, never backwards, ending at 100%.
    assert shares == sorted(shares) and shares[-1] == 100
    assert any(0 < share < 100 for share in shares)
    assert lines[-1].startswith("scan: 100% · 3 conversations, 36 messages · ")
    # Stderr only (stdout has the alerts), and never message text.
    assert "scan: " not in captured.out and "groom" not in captured.err

    assert main(["--config", str(config), "eval", "--data", str(first), str(second)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^eval: \d+% · ", err, re.MULTILINE)
    assert err.splitlines()[-1].startswith("eval: 100% · 3 conversations, 36 messages · ")


def test_one_large_file_shows_progress_as_it_is_read(
    tmp_path: Path,
    keyword_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A single export is the usual scan: its share moves within the file, not only at its end."""
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    records = [grooming(f"g-{i}") if i % 5 == 0 else ordinary(f"o-{i}") for i in range(40)]
    # (An .xz file reports its compressed bytes, read 8 KiB at a time: too coarse for a file this small.)
    data = write_jsonl(tmp_path / "one.jsonl", records)
    config = write_config(tmp_path, keyword_model_dir)
    assert main(["--config", str(config), "scan", str(data), "--db", str(tmp_path / "one.sqlite3")]) == 0
    shares = [
        int(match[1])
        for line in capsys.readouterr().err.splitlines()
        if (match := re.match(r"scan: (\d+)%", line))
    ]
    assert shares == sorted(shares) and shares[-1] == 100
    assert len({share for share in shares if 0 < share < 100}) >= 3, shares


def test_scan_of_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_eval_writes_exactly_the_documented_metrics(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(
        tmp_path / "val.jsonl", [grooming("g-1"), grooming("g-2"), ordinary("o-1"), ordinary("o-2")]
    )
    # Segments are scored whole, as chunks through the pair model: grooming lines after 200 ordinary words
    # count (scored as one input, as eval once did, the text would be cut long before them).
    chatter = " ".join(["hello there nice game tonight"] * 40)
    segments = write_jsonl(
        tmp_path / "segments.jsonl",
        [
            {"id": "s-1", "source": "seg", "label": 1, "text": "secret groom secret"},
            {"id": "s-2", "source": "seg", "label": 0, "text": "hello there"},
            {"id": "s-3", "source": "seg", "label": 1, "text": f"{chatter}\nsecret groom\nour secret groom"},
            {"id": "s-4", "source": "seg", "label": 0, "text": f"{chatter}\nsee you later"},
        ],
    )
    config = write_config(tmp_path, keyword_model_dir)
    out = tmp_path / "eval.json"
    assert (
        main(["--config", str(config), "eval", "--data", str(data), str(segments), "--json", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    assert set(CONVERSATION_METRIC_KEYS) <= set(report)
    assert set(report["by_source"]["test"]) == set(CONVERSATION_METRIC_KEYS)
    assert report["conversations_pos"] == 2 and report["conversations_neg"] == 2
    assert report["precision"] == 1.0 and report["recall"] == 1.0
    assert report["suspect_accuracy"] == 1.0 and report["victim_flag_rate"] == 0.0
    assert report["false_alerts_per_10k_messages"] == 0.0
    assert report["segments"]["segments_pos"] == 2 and report["segments"]["segments_neg"] == 2
    assert report["segments"]["pr_auc"] == 1.0
    table = capsys.readouterr().out
    assert "ALL" in table and "F0.5" in table


def test_eval_scores_records_with_the_same_id_in_two_files_apart(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    # A chat and its variant (an early cut, a rewrite) share an id and their first messages: the second must
    # not read as a redelivery of the first's messages.
    first = write_jsonl(tmp_path / "original.jsonl", [grooming("g-1"), ordinary("o-1")])
    second = write_jsonl(tmp_path / "variant.jsonl", [grooming("g-1"), ordinary("o-1")])
    config = write_config(tmp_path, keyword_model_dir)
    out = tmp_path / "eval.json"
    assert main(["--config", str(config), "eval", "--data", str(first), str(second), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["conversations_pos"] == 2 and report["conversations_neg"] == 2
    assert report["recall"] == 1.0 and report["false_alerts_per_10k_messages"] == 0.0


def test_run_without_any_platform_says_what_to_enable(tmp_path: Path, keyword_model_dir: Path) -> None:
    config = write_config(tmp_path, keyword_model_dir)
    assert main(["--config", str(config), "run"]) == 2


def test_scan_reads_chat_exports_and_writes_a_report(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adult = discord_author("201", "adult_gamer")
    kid = discord_author("202", "kid_player")
    messages = [
        discord_message(
            f"9{i:02d}", adult if i % 2 == 0 else kid, "secret groom" if i % 2 == 0 else "ok lol", second=i
        )
        for i in range(12)
    ]
    export = write_json(tmp_path / "discord.json", discord_export(messages, channel_type="DirectTextChat"))
    slack = write_slack_zip(tmp_path / "slack.zip", slack_workspace())
    config = write_config(tmp_path, keyword_model_dir)
    prefix = tmp_path / "report"
    args = ["--config", str(config), "scan", str(export), str(slack), "--db", str(tmp_path / "s.sqlite3")]
    assert main([*args, "--report", str(prefix)]) == 0
    err = capsys.readouterr().err
    assert "Scan summary" in err and "1 new alerts (1 in the database)" in err
    assert f"kept: {tmp_path / 's.sqlite3'} holds the scanned messages' text" in err
    report = json.loads((tmp_path / "report.json").read_text())
    html = (tmp_path / "report.html").read_text()
    assert "adult_gamer" in html and "<script" not in html
    [pair] = report["flagged_pairs"]
    assert pair["suspect"]["id"] == "201"
    # The pair's risk trajectory from the scan's database, drawn inline for people.
    assert len(pair["risk_history"]) >= 2 and pair["threshold"] > 0
    assert html.count("<svg") == 1
    # A DM has no server; its channel is named as the export names it.
    assert pair["space_name"] is None and pair["channel_names"] == ["general"]


def test_the_scan_report_names_servers_and_channels_as_the_export_does(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    adult, kid = discord_author("201", "adult_gamer"), discord_author("202", "kid_player")
    messages = [
        discord_message(
            f"9{i:02d}", adult if i % 2 == 0 else kid, "secret groom" if i % 2 == 0 else "ok lol", second=i
        )
        for i in range(12)
    ]
    guild = {"id": "900", "name": "Minecraft <Club> & Friends"}
    export = write_json(tmp_path / "discord.json", discord_export(messages, guild=guild))
    config = write_config(tmp_path, keyword_model_dir)
    args = ["--config", str(config), "scan", str(export), "--db", str(tmp_path / "s.sqlite3")]
    assert main([*args, "--report", str(tmp_path / "report")]) == 0
    [pair] = json.loads((tmp_path / "report.json").read_text())["flagged_pairs"]
    assert pair["space_name"] == "Minecraft <Club> & Friends" and pair["space_id"] == "900"
    assert pair["channel_ids"] == ["100"] and pair["channel_names"] == ["general"]
    html = (tmp_path / "report.html").read_text()
    assert "<b>Minecraft &lt;Club&gt; &amp; Friends</b> <code>900</code>" in html
    assert "<b>#general</b> <code>100</code>" in html


def test_run_shard_options_override_the_config(tmp_path: Path, keyword_model_dir: Path) -> None:
    config = write_config(
        tmp_path, keyword_model_dir, '[discord]\nenabled = true\nshard_ids = "0-7"\nshard_count = 16\n'
    )
    settings = load_settings(config)

    def run_with(*options: str) -> tuple[str, int]:
        args = build_parser().parse_args(["run", "--config", str(config), *options])
        discord = with_shard_options(settings, args).discord
        return discord.shard_ids, discord.shard_count

    assert run_with() == ("0-7", 16)
    assert run_with("--shards", "8-11") == ("8-11", 16)
    assert run_with("--shards", "12, 15,13-14", "--shard-count", "16") == ("12-15", 16)
    assert run_with("--shard-count", "32") == ("0-7", 32)
    assert run_with("--shards", "1-2", "--shard-count", "4") == ("1-2", 4)


@pytest.mark.parametrize(
    ("config_text", "options", "expected"),
    [
        ("", ["--shards", "0-3", "--shard-count", "16"], "--shards and --shard-count choose Discord shards"),
        ("[discord]\nenabled = false\n", ["--shard-count", "16"], "--shard-count chooses Discord shards"),
        ("[discord]\nenabled = true\n", ["--shards", "0-3"], "--shards needs --shard-count"),
        (
            "[discord]\nenabled = true\n",
            ["--shards", "3-1", "--shard-count", "4"],
            "--shards: the range 3-1 runs backwards (write 1-3)",
        ),
        (
            "[discord]\nenabled = true\n",
            ["--shards", "", "--shard-count", "4"],
            "--shards: no shard ids given",
        ),
        (
            "[discord]\nenabled = true\n",
            ["--shards", "1,1", "--shard-count", "4"],
            "--shards: shard 1 is listed twice",
        ),
        (
            "[discord]\nenabled = true\n",
            ["--shards", "4", "--shard-count", "4"],
            "--shards: shard 4 is out of range: with 4 shards the ids are 0 to 3",
        ),
        (
            "[discord]\nenabled = true\n",
            ["--shards", "0", "--shard-count", "0"],
            "--shard-count: expected an integer between 1 and 100000, got 0",
        ),
        (
            '[discord]\nenabled = true\nshard_ids = "0-7"\nshard_count = 16\n',
            ["--shard-count", "4"],
            "[discord] shard_ids with --shard-count 4: shard 7 is out of range: with 4 shards the ids are "
            "0 to 3",
        ),
    ],
)
def test_run_refuses_shard_options_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config_text: str, options: list[str], expected: str
) -> None:
    # Refused before the model or the store is opened.
    config = tmp_path / "vigil.toml"
    config.write_text(config_text, encoding="utf-8")
    assert main(["--config", str(config), "run", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vigil: ") and expected in err, err


def test_run_documents_its_shard_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = capsys.readouterr().out
    assert "--shards IDS" in shown and "--shard-count N" in shown
    assert "--shards 0-3 --shard-count 16" in shown.split("examples:")[1]
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["run", "--shard-count", "many"])
    assert refused.value.code == 2
