"""An echo bot on the Taube SDK: every text it receives is sent back to where it came from.

Run a server (``taube serve``), then::

    python examples/sdk_echo.py --handle echo --password 'long secret'

and from another profile: ``taube send @echo "hello"`` then ``taube listen``.
The bot registers the handle on first run (or logs in if it exists) and keeps
its session, outbox and inbox position in ``--profile`` (default ./echo-profile),
so a restarted bot neither misses nor repeats a message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path

from taube.client import Client, Message, Profile, TaubeApiError, login, register


async def ensure_session(profile: Path, server: str, handle: str, password: str) -> None:
    with Profile.open(profile) as p:
        if p.session() is not None:
            return
    try:
        await register(handle, password, servers=server, profile=profile, device_name="echo bot")
    except TaubeApiError as exc:
        if exc.code != "account.handle_taken":
            raise
        await login(handle, password, servers=server, profile=profile, device_name="echo bot")


async def echo(profile: Path) -> None:
    async with Client(profile) as client:
        async for event in client.events():
            # Only echo text from others (our own messages from other devices come here too).
            if isinstance(event, Message) and event.sender != client.handle and event.text:
                await client.mark_read(event.conversation, event.sender, [event.id])
                await client.send(event.conversation, f"echo: {event.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--handle", default="echo")
    parser.add_argument("--password", required=True)
    parser.add_argument("--profile", type=Path, default=Path("echo-profile"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(ensure_session(args.profile, args.server, args.handle, args.password))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop the bot
        asyncio.run(echo(args.profile))


if __name__ == "__main__":
    main()
