"""``vigil deliver``: delivery workers only, from the config, beside ``vigil run`` on one store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.storage.builders import BASE_TIME, deadline, make_alert, make_pair_key, make_pair_state
from tests.support.cli_data import write_config
from vigil.bots.app import App, AppError, open_app
from vigil.bots.cli import main
from vigil.bots.core.models import OutboxKind
from vigil.config.settings import load_settings, resolve_secrets


async def _pending_alerts(app: App, count: int) -> list[int]:
    alert_ids = []
    for index in range(count):
        key = make_pair_key("u0", f"u{index + 1}")
        await app.store.save_pair(make_pair_state(key))
        alert = await app.store.create_alert(make_alert(key))
        await app.store.enqueue_delivery(
            alert_id=alert.alert_id, kind=OutboxKind.POST, revision=1, now=BASE_TIME
        )
        alert_ids.append(alert.alert_id)
    return alert_ids


async def test_deliver_workers_print_each_pending_alert_once(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(write_config(tmp_path, keyword_model_dir, "[console]\nenabled = true\n"))
    async with open_app(settings, database=str(tmp_path / "vigil.sqlite3"), replay=False) as app:
        alert_ids = await _pending_alerts(app, 6)
        stop = asyncio.Event()

        async def stop_once_delivered() -> None:
            # Polled: the workers run in this test's loop, and nothing signals an empty outbox.
            for _ in range(2000):
                if not await app.store.pending_delivery_count():
                    break
                await asyncio.sleep(0.01)
            stop.set()

        async with deadline():
            await asyncio.gather(
                app.deliver(secrets=resolve_secrets(settings, {}), stop=stop, workers=3, name="test"),
                stop_once_delivered(),
            )
        assert app.outbox is None, "no adapter's worker: only the delivery workers ran"

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted(alert["alert_id"] for alert in printed) == alert_ids
    assert not any(alert["updated"] for alert in printed)


async def test_deliver_refuses_platforms_whose_sinks_need_their_adapter(
    tmp_path: Path, keyword_model_dir: Path
) -> None:
    settings = load_settings(write_config(tmp_path, keyword_model_dir, "[discord]\nenabled = true\n"))
    async with open_app(settings, database=str(tmp_path / "vigil.sqlite3"), replay=False) as app:
        with pytest.raises(AppError, match="cannot deliver discord alerts"):
            await app.deliver(
                secrets=resolve_secrets(settings, {}), stop=asyncio.Event(), workers=1, name="t"
            )


def test_deliver_without_anything_to_deliver_to_says_what_to_enable(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, keyword_model_dir)
    assert main(["--config", str(config), "deliver"]) == 2
    assert "enable [http] (with webhook_url) or [console]" in capsys.readouterr().err
    assert main(["--config", str(config), "deliver", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
