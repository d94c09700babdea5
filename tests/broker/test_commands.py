"""``vigil gateway`` and ``vigil worker`` refuse what cannot work, before loading anything, in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.bots.cli import main


def config(folder: Path, text: str) -> Path:
    path = folder / "scale.toml"
    path.write_text(text, encoding="utf-8")
    return path


SCALE = '[storage]\nbackend = "postgres"\n[broker]\nenabled = true\n[http]\nenabled = true\n'


@pytest.mark.parametrize("command", ["gateway", "worker"])
def test_a_config_without_the_broker_or_postgres_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config(tmp_path, "[http]\nenabled = true\n")), command]) == 2
    assert f"vigil {command} needs [broker] enabled = true" in capsys.readouterr().err
    sqlite = config(tmp_path, "[broker]\nenabled = true\n[http]\nenabled = true\n")
    assert main(["--config", str(sqlite), command]) == 2
    assert f'vigil {command} needs [storage] backend = "postgres"' in capsys.readouterr().err


@pytest.mark.parametrize("command", ["gateway", "worker"])
def test_missing_secrets_are_named_not_shown(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("VIGIL_NATS_URL", "VIGIL_POSTGRES_DSN", "VIGIL_HTTP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--config", str(config(tmp_path, SCALE)), command]) == 2
    err = capsys.readouterr().err
    assert "VIGIL_NATS_URL" in err and "the NATS server URL" in err
    assert "VIGIL_POSTGRES_DSN" in err


def test_a_gateway_with_no_platform_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_NATS_URL", "nats://user:hunter2@127.0.0.1:9")
    monkeypatch.setenv("VIGIL_POSTGRES_DSN", "postgresql://vigil:hunter2@127.0.0.1:9/vigil")
    text = '[storage]\nbackend = "postgres"\n[broker]\nenabled = true\n'
    assert main(["--config", str(config(tmp_path, text)), "gateway"]) == 2
    err = capsys.readouterr().err
    assert "nothing to receive: enable [discord], [slack] or [http]" in err
    assert "hunter2" not in err


def test_shard_options_need_discord(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, SCALE)
    assert main(["--config", str(path), "gateway", "--shards", "0-1", "--shard-count", "4"]) == 2
    assert "[discord] is" in capsys.readouterr().err


def test_a_worker_metrics_port_out_of_range_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_NATS_URL", "nats://127.0.0.1:9")
    monkeypatch.setenv("VIGIL_POSTGRES_DSN", "postgresql://vigil@127.0.0.1:9/vigil")
    monkeypatch.setenv("VIGIL_HTTP_SECRET", "a-test-secret-of-some-length")
    path = config(tmp_path, SCALE)
    assert main(["--config", str(path), "worker", "--metrics-port", "70000"]) == 2
    assert "--metrics-port must be between 1 and 65535" in capsys.readouterr().err
