"""A platform talking to Vigil's HTTP API: send messages, receive verified alert webhooks.

Start Vigil with [http] enabled and webhook_url = "http://127.0.0.1:8788/vigil", with the secrets in
VIGIL_HTTP_SECRET and VIGIL_WEBHOOK_SECRET, then run:  python examples/http_client_example.py
Every message here is fictional.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta

from aiohttp import web

from vigil.bots.http.client import VigilClient, verify_webhook

logger = logging.getLogger(__name__)


async def receive_alert(request: web.Request) -> web.Response:
    body = await request.read()  # the raw bytes: the signature covers exactly these
    if not verify_webhook(
        body,
        timestamp=request.headers.get("X-Vigil-Timestamp", ""),
        signature=request.headers.get("X-Vigil-Signature", ""),
        secret=os.environ["VIGIL_WEBHOOK_SECRET"],
    ):
        return web.Response(status=401)
    alert = json.loads(body)
    logger.warning(
        "case %d %s: risk %.2f, likely groomer %s",
        alert["case_number"],
        "updated" if alert["updated"] else "opened",
        alert["risk"],
        alert["suspect_id"],
    )
    return web.Response(status=204)


async def main() -> None:
    app = web.Application()
    app.router.add_post("/vigil", receive_alert)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8788).start()
    start = datetime.now(UTC)
    script = [("u-adult", "hey, what's your age?"), ("u-kid", "13"), ("u-adult", "keep this our secret ok")]
    messages = [
        {
            "space_id": "example-community",
            "channel_id": "dm-1",
            "message_id": f"example-{i}",
            "author_id": author,
            "recipient_ids": ["u-kid" if author == "u-adult" else "u-adult"],
            "is_dm": True,
            "text": text,
            "timestamp": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        for i, (author, text) in enumerate(script)
    ]
    try:
        async with VigilClient("http://127.0.0.1:8787", os.environ["VIGIL_HTTP_SECRET"]) as vigil:
            for result in await vigil.send_messages(messages):
                print(result)
            await asyncio.sleep(5)  # alerts, if any, arrive on the webhook meanwhile
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
