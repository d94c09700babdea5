"""The progress line of scan, eval and rekey: share done, time left and when it shows, with a fake clock."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import secrets
from pathlib import Path

import pytest

from vigil.bots import progress as progress_module
from vigil.bots.cli import main
from vigil.bots.progress import CONVERSATIONS, REKEY, Progress, input_size, progress_line, time_left
from vigil.storage.crypto import TextCipher
from vigil.storage.sqlite import SqliteStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line(*, done: int, total: int | None, elapsed_s: float, messages: int = 56_789) -> str:
    return progress_line(
        label="scan",
        tally=CONVERSATIONS,
        counts={"conversations": 1_234, "messages": messages},
        done=done,
        total=total,
        elapsed_s=elapsed_s,
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.4, "about 5 s left"),
        (12, "about 10 s left"),
        (13, "about 15 s left"),
        (42, "about 40 s left"),
        (57, "about 55 s left"),
        (58, "about 1 min left"),
        (89, "about 1 min left"),
        (90, "about 2 min left"),
        (59 * 60, "about 59 min left"),
        (3570, "about 1 h left"),  # 59.5 min: rounds up into hours
        (5400, "about 1 h 30 min left"),
        (2 * 3600 + 3 * 60, "about 2 h 5 min left"),  # minutes to the nearest 5 past the first hour
        (26 * 3600, "about 26 h left"),
    ],
)
def test_time_left_is_rounded_as_an_estimate_deserves(seconds: float, expected: str) -> None:
    assert time_left(seconds) == expected


def test_the_line_has_the_share_done_the_counts_the_rate_and_the_time_left() -> None:
    # 37% in 60 s: 63% to go at the same pace is about 102 s.
    assert (
        line(done=370, total=1000, elapsed_s=60)
        == "scan: 37% · 1,234 conversations, 56,789 messages · 946 msg/s · about 2 min left"
    )


def test_the_share_is_rounded_down_so_100_percent_means_done() -> None:
    assert line(done=999, total=1000, elapsed_s=60).startswith("scan: 99% · ")
    assert line(done=29, total=100, elapsed_s=60).startswith("scan: 29% · ")  # not 28 (0.29 * 100 in floats)
    finished = line(done=1000, total=1000, elapsed_s=60)
    assert finished.startswith("scan: 100% · ") and "left" not in finished
    # More than counted (rows added while rekey runs): capped, never above 100%.
    assert line(done=1200, total=1000, elapsed_s=60).startswith("scan: 100% · ")


@pytest.mark.parametrize(
    ("done", "elapsed_s"),
    [
        (19, 600.0),  # 1.9%: too little done to extrapolate, however long it took
        (500, 2.9),  # half done, but in under 3 s: mostly warm-up
    ],
)
def test_no_time_left_too_early(done: int, elapsed_s: float) -> None:
    shown = line(done=done, total=1000, elapsed_s=elapsed_s)
    assert "%" in shown and "left" not in shown


def test_at_the_thresholds_the_time_left_shows() -> None:
    assert line(done=20, total=1000, elapsed_s=3.0).endswith("· about 2 min left")  # 2% in 3 s: 147 s to go


@pytest.mark.parametrize("total", [None, 0])
def test_without_a_total_there_is_no_share_and_no_time_left(total: int | None) -> None:
    assert line(done=0, total=total, elapsed_s=60) == "scan: 1,234 conversations, 56,789 messages · 946 msg/s"


def test_no_time_and_nothing_done_yet() -> None:
    assert line(done=0, total=1000, elapsed_s=0, messages=0) == (
        "scan: 0% · 1,234 conversations, 0 messages · 0 msg/s"
    )


def test_rekey_counts_rows_and_values() -> None:
    shown = progress_line(
        label="rekey",
        tally=REKEY,
        counts={"rows": 12_000, "values": 3_456},
        done=12_000,
        total=32_000,
        elapsed_s=6,
    )
    assert (
        shown
        == "rekey: 37% · 12,000 rows checked, 3,456 values re-encrypted · 2,000 rows/s · about 10 s left"
    )


def test_lines_come_at_most_every_interval_as_whole_lines_off_a_terminal() -> None:
    clock, stream = FakeClock(), io.StringIO()
    with Progress("eval", tally=CONVERSATIONS, total=100, every_s=5, stream=stream, clock=clock) as progress:
        clock.now += 1
        progress.tick(messages=10, conversations=1)
        assert stream.getvalue() == ""
        clock.now += 4
        progress.tick(done=50, messages=10)
        clock.now += 1
        progress.tick(messages=10)  # 1 s after the last line: nothing
    # The final state ends the run, on a line of its own.
    assert stream.getvalue() == (
        "eval: 50% · 1 conversations, 20 messages · 4 msg/s · about 5 s left\n"
        "eval: 50% · 1 conversations, 30 messages · 5 msg/s · about 5 s left\n"
    )
    assert progress.count("messages") == 30 and progress.elapsed == 6


def test_a_short_run_stays_quiet() -> None:
    clock, stream = FakeClock(), io.StringIO()
    with Progress("scan", tally=CONVERSATIONS, total=100, every_s=5, stream=stream, clock=clock) as progress:
        clock.now += 4.9
        progress.tick(done=100, messages=10, conversations=1)
    assert stream.getvalue() == ""


def test_on_a_terminal_one_line_is_rewritten_and_the_run_ends_with_a_newline() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(
        "scan", tally=CONVERSATIONS, total=1000, every_s=5, stream=stream, clock=clock, rewrite=True
    )
    with progress:
        clock.now += 5
        progress.tick(done=100, messages=12_345, conversations=100)
        clock.now += 5
        progress.tick(done=100, messages=1)
        progress.note("chats.jsonl:7: skipped: invalid JSON")
        clock.now += 5
        progress.tick(done=800)
    first = "scan: 10% · 100 conversations, 12,345 messages · 2,469 msg/s · about 45 s left"
    second = "scan: 20% · 100 conversations, 12,346 messages · 1,235 msg/s · about 40 s left"
    final = "scan: 100% · 100 conversations, 12,346 messages · 823 msg/s"
    assert stream.getvalue() == (
        f"\r{first}\r{second}\n"  # the note ends the open line first
        "chats.jsonl:7: skipped: invalid JSON\n"
        f"\r{final}\r{final}\n"
    )


def test_a_shorter_line_blanks_what_is_left_of_the_longer_one() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress("rekey", tally=REKEY, total=None, every_s=0, stream=stream, clock=clock, rewrite=True)
    clock.now += 1
    progress.tick(rows=1_000)  # 1,000 rows/s
    clock.now += 999
    progress.tick()  # 1 rows/s: four characters shorter
    first, shorter = stream.getvalue().split("\r")[1:]
    assert len(shorter) == len(first) and shorter.rstrip() != shorter


class TerminalStream(io.StringIO):
    def fileno(self) -> int:
        return 2


SHORT = "scan: 1% · 1 conversations, 10 messages · 10 msg/s"
WIDE = "scan: 37% · 1,234 conversations, 56,789 messages · 946 msg/s · about 2 min left"  # 79 characters


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        # Rewritten while it fits; one that would wrap ends the open line and stands on its own.
        (70, f"\r{SHORT}\n{WIDE}\n"),
        (80, f"\r{SHORT}\r{WIDE}"),
        (0, f"\r{SHORT}\r{WIDE}"),  # a terminal that never set its size: taken as 80 columns
    ],
)
def test_a_line_too_wide_for_the_terminal_is_written_whole(
    columns: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((columns, 24)))
    clock, stream = FakeClock(), TerminalStream()
    progress = Progress(
        "scan", tally=CONVERSATIONS, total=1000, every_s=0, stream=stream, clock=clock, rewrite=True
    )
    clock.now += 1
    progress.tick(done=10, conversations=1, messages=10)
    clock.now += 59
    progress.tick(done=360, conversations=1_233, messages=56_779)
    assert stream.getvalue() == expected


def test_an_interrupted_run_keeps_its_last_line_and_ends_it() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress("rekey", tally=REKEY, total=10, every_s=5, stream=stream, clock=clock, rewrite=True)
    with pytest.raises(KeyboardInterrupt), progress:
        clock.now += 5
        progress.tick(done=5, rows=5)
        raise KeyboardInterrupt
    assert (
        stream.getvalue()
        == "\rrekey: 50% · 5 rows checked, 0 values re-encrypted · 1 rows/s · about 5 s left\n"
    )


def test_an_unknown_count_is_a_mistake() -> None:
    progress = Progress("scan", tally=CONVERSATIONS, stream=io.StringIO())
    with pytest.raises(KeyError, match="rows"):
        progress.tick(rows=1)


def test_input_size_sums_a_folder(tmp_path: Path) -> None:
    (tmp_path / "export" / "general").mkdir(parents=True)
    (tmp_path / "export" / "users.json").write_bytes(b"x" * 10)
    (tmp_path / "export" / "general" / "2024-01-01.json").write_bytes(b"x" * 32)
    assert input_size(tmp_path / "export") == 42
    assert input_size(tmp_path / "export" / "users.json") == 10
    assert input_size(tmp_path / "missing") == 0


def test_rekey_reads_as_many_rows_as_it_counted(tmp_path: Path) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)

    async def scenario() -> tuple[int, int, int]:
        async with SqliteStore(tmp_path / "v.sqlite3", cipher=TextCipher(key=old)) as store:
            for number in range(7):
                await store.put_record("notes", f"k{number}", f"value {number}")
        rotated = TextCipher(key=new, old_keys=[old])
        read: list[int] = []
        async with SqliteStore(tmp_path / "v.sqlite3", cipher=rotated) as store:
            counted = await store.count_rekey_rows()
            rewritten = await store.rekey(batch_rows=3, on_rows=read.append)
        return counted, sum(read), rewritten

    counted, read, rewritten = asyncio.run(scenario())
    assert counted == read >= 7 and rewritten == 7


def test_rekey_shows_its_progress_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)

    async def fill() -> None:
        async with SqliteStore(tmp_path / "vigil.sqlite3", cipher=TextCipher(key=old_key)) as store:
            for number in range(5):
                await store.put_record("notes", f"k{number}", f"value {number}")

    asyncio.run(fill())
    config = tmp_path / "vigil.toml"
    config.write_text('[storage]\ndatabase = "vigil.sqlite3"\n', encoding="utf-8")
    monkeypatch.setenv("VIGIL_ENCRYPTION_KEY", base64.urlsafe_b64encode(new_key).decode())
    monkeypatch.setenv("VIGIL_ENCRYPTION_OLD_KEYS", base64.urlsafe_b64encode(old_key).decode())
    monkeypatch.setattr(progress_module, "EVERY_S", 0.0)
    assert main(["--config", str(config), "rekey"]) == 0
    captured = capsys.readouterr()
    assert "5 values re-encrypted under key id" in captured.out
    assert "%" not in captured.out  # progress is for stderr only
    lines = captured.err.splitlines()
    assert lines and all(shown.startswith("rekey: ") for shown in lines)
    assert lines[-1].startswith("rekey: 100% · ") and "5 values re-encrypted" in lines[-1]
