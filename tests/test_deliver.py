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


async def _pending_alerts(app: App, count: int, *, platforms: tuple[str, ...] = ("discord",)) -> list[int]:
    """``count`` alerts waiting to be posted, their platforms taken from ``platforms`` in turn."""
    alert_ids = []
    for index in range(count):
        key = make_pair_key("u0", f"u{index + 1}", platform=platforms[index % len(platforms)])
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


async def test_deliver_leaves_discord_and_slack_alerts_to_the_adapters_of_vigil_run(
    tmp_path: Path, keyword_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # [http] without a webhook: its route "delivers" any platform (polled), and the console prints it.
    settings = load_settings(
        write_config(tmp_path, keyword_model_dir, "[http]\nenabled = true\n[console]\nenabled = true\n")
    )
    async with open_app(settings, database=str(tmp_path / "vigil.sqlite3"), replay=False) as app:
        alert_ids = await _pending_alerts(app, 8, platforms=("discord", "forum", "slack", "http"))
        stop = asyncio.Event()

        async def stop_once_the_rest_is_delivered() -> None:
            for _ in range(2000):
                if await app.store.pending_delivery_count() <= 4:
                    break
                await asyncio.sleep(0.01)
            stop.set()

        async with deadline():
            await asyncio.gather(
                app.deliver(secrets=resolve_secrets(settings, {}), stop=stop, workers=2, name="test"),
                stop_once_the_rest_is_delivered(),
            )
        left = await app.store.due_deliveries(now=BASE_TIME, limit=10)

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted((alert["platform"], alert["alert_id"]) for alert in printed) == sorted(
        [("forum", alert_ids[1]), ("http", alert_ids[3]), ("forum", alert_ids[5]), ("http", alert_ids[7])]
    )
    assert sorted((item.alert_id, item.attempts) for item in left) == [
        (alert_id, 0) for alert_id in sorted(alert_ids[0::4] + alert_ids[2::4])
    ], "never claimed, so never failed: still due for vigil run's Discord and Slack sinks"


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
