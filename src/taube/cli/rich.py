"""CLI commands for what people do with messages: reply, react, edit, delete, polls,
files, the chat list and history, disappearing messages, blocking.

Messages are named by the id ``taube history`` prints; the local history (in the
profile) says which conversation and sender an id belongs to. ``chats`` and
``history`` first fetch what is waiting on the server (``--offline`` skips that).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Final

from taube.cli import render
from taube.cli.commands import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    check_address,
    check_handle,
    flush_outbox,
    make_client,
    note,
)
from taube.cli.commands import (
    send as send_plain,
)
from taube.client import Client
from taube.client.content import Attachment, MessageRef
from taube.crypto import CryptoError

SYNC_IDLE_S: Final = 0.5
SYNC_MAX_S: Final = 5.0
_DURATION: Final = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


async def resolve(client: Client, message_id: str) -> tuple[str, MessageRef]:
    """The conversation and reference of a message this device has stored."""
    found = await client.find(message_id)
    if not found:
        raise CliError(
            "client.unknown_message",
            f"no message {message_id!r} on this device (`taube history @peer` lists ids)",
            EXIT_USAGE,
        )
    if len(found) > 1:
        raise CliError("client.ambiguous_message", f"{message_id!r} names several messages")
    conversation, sender = found[0]
    return conversation, MessageRef(sender=sender, id=message_id)


async def _queue_and_flush(client: Client, args: argparse.Namespace, message_id: str) -> int:
    code = await flush_outbox(client, args.timeout)
    if code == EXIT_OK:
        print(message_id)
    return code


async def send(args: argparse.Namespace) -> int:
    """``taube send``; with ``--reply-to ID`` the message quotes that one."""
    if not args.reply_to:
        return await send_plain(args)
    if args.stdin or args.text is None:
        raise CliError("client.usage", "--reply-to needs TEXT (not --stdin)", EXIT_USAGE)
    to = check_address(args.to)
    async with make_client(args) as client:
        _, ref = await resolve(client, args.reply_to)
        message_id = await client.reply(to, args.text, ref)
        return await _queue_and_flush(client, args, message_id)


async def react(args: argparse.Namespace) -> int:
    emoji = "" if args.remove else (args.emoji or "")
    if not emoji and not args.remove:
        raise CliError("client.usage", "give an emoji, or --remove", EXIT_USAGE)
    async with make_client(args) as client:
        conversation, ref = await resolve(client, args.message_id)
        message_id = await client.react(conversation, ref, emoji)
        return await _queue_and_flush(client, args, message_id)


async def edit(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        conversation, ref = await resolve(client, args.message_id)
        if ref.sender != client.handle:
            raise CliError("client.not_yours", "you can only edit your own messages")
        message_id = await client.edit(conversation, ref, args.text)
        return await _queue_and_flush(client, args, message_id)


async def delete(args: argparse.Namespace) -> int:
    if not args.for_everyone:
        raise CliError(
            "client.usage",
            "deleting needs --for-everyone (it removes the message on every device)",
            EXIT_USAGE,
        )
    async with make_client(args) as client:
        conversation, ref = await resolve(client, args.message_id)
        message_id = await client.delete_for_everyone(conversation, ref)
        return await _queue_and_flush(client, args, message_id)


async def poll(args: argparse.Namespace) -> int:
    to = check_address(args.to)
    if not 2 <= len(args.options) <= 12:
        raise CliError("client.usage", "a poll has 2 to 12 options", EXIT_USAGE)
    async with make_client(args) as client:
        message_id = await client.poll(to, args.question, args.options, multiple=args.multiple)
        return await _queue_and_flush(client, args, message_id)


async def vote(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        conversation, ref = await resolve(client, args.poll_id)
        item = await client.get(ref.sender, ref.id)
        if item is None or item.poll is None:
            raise CliError("client.not_a_poll", f"{args.poll_id!r} is not a poll", EXIT_USAGE)
        options = item.poll.options
        chosen: list[int] = []
        for choice in args.choices:
            if choice in options:
                chosen.append(options.index(choice))
            elif choice.isdigit() and 1 <= int(choice) <= len(options):
                chosen.append(int(choice) - 1)
            else:
                raise CliError(
                    "client.usage",
                    f"{choice!r} is not an option of this poll: {', '.join(options)}",
                    EXIT_USAGE,
                )
        if len(chosen) > 1 and not item.poll.multiple:
            raise CliError("client.usage", "this poll allows one choice", EXIT_USAGE)
        message_id = await client.vote(conversation, ref, chosen)
        return await _queue_and_flush(client, args, message_id)


def _progress(name: str) -> render.ProgressFn:
    return render.progress_printer(f"uploading {name}", sys.stderr)


async def send_file(args: argparse.Namespace) -> int:
    to = check_address(args.to)
    path = Path(args.path)
    try:
        data = path.read_bytes()  # noqa: ASYNC240 (before any connection; nothing else runs)
    except OSError as exc:
        raise CliError("client.file", f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    async with make_client(args) as client:
        message_id = await client.send_file(
            to, data, path.name, caption=args.caption or "", progress=_progress(path.name)
        )
        return await _queue_and_flush(client, args, message_id)


async def download(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        _, ref = await resolve(client, args.message_id)
        item = await client.get(ref.sender, ref.id)
        attachment = None if item is None else item.attachment
        if not isinstance(attachment, Attachment):
            raise CliError("client.no_file", f"{args.message_id!r} has no file", EXIT_USAGE)
        target = _download_target(args, attachment)
        try:
            data = await client.download(attachment)
        except CryptoError:
            raise CliError(
                "client.corrupt_file",
                "the downloaded file does not match what the sender sent; nothing was saved",
                EXIT_ERROR,
            ) from None
    target.write_bytes(data)
    note(f"saved {target} ({render.size(len(data))})")
    return EXIT_OK


def _download_target(args: argparse.Namespace, attachment: Attachment) -> Path:
    """Where to save: --out (a file, or a folder to put the file's own name in)."""
    name = Path(attachment.name).name or "download"  # never a path the sender chose
    target = Path(args.out) if args.out else Path(name)
    if target.is_dir():
        target = target / name
    if target.exists() and not args.force:
        raise CliError("client.exists", f"{target} exists (use --force)", EXIT_USAGE)
    return target


async def sync(client: Client) -> None:
    """Take in what the server holds for this device (until quiet, at most a few s)."""
    try:
        await client.wait_connected(timeout=SYNC_MAX_S)
    except Exception:  # offline: show what is stored
        note("offline: showing what this device has stored")
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SYNC_MAX_S
    events = client.events()
    while loop.time() < deadline:
        try:
            await asyncio.wait_for(anext(events), timeout=SYNC_IDLE_S)
        except TimeoutError:
            break


async def chats(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        if not args.offline:
            await sync(client)
        summaries = await client.chats()
    for chat in summaries:
        if args.json:
            print(render.json_line(render.chat_json(chat)))
        else:
            print(render.chat_line(chat))
    if not summaries and not args.json:
        note("no chats yet")
    return EXIT_OK


async def history(args: argparse.Namespace) -> int:
    conversation = check_address(args.conversation)
    async with make_client(args) as client:
        if not args.offline:
            await sync(client)
        items = await client.history(conversation, args.limit)
        if args.mark_read:
            await client.mark_chat_read(conversation)
            await client.ack()
    for item in items:
        print(render.json_line(render.item_json(item)) if args.json else render.item_line(item))
    return EXIT_OK


def parse_duration(text: str) -> int:
    if text.strip().lower() in {"off", "0"}:
        return 0
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise CliError(
            "client.usage", f"{text!r} is not a duration: use e.g. 24h, 7d, 90d or off", EXIT_USAGE
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


async def disappearing(args: argparse.Namespace) -> int:
    conversation = check_address(args.conversation)
    seconds = parse_duration(args.duration)
    async with make_client(args) as client:
        message_id = await client.set_disappearing(conversation, seconds)
        return await _queue_and_flush(client, args, message_id)


async def block(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with make_client(args) as client:
        await client.block(user)
    note(f"blocked @{user}: they cannot message you or see when you are online")
    return EXIT_OK


async def unblock(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with make_client(args) as client:
        await client.unblock(user)
    note(f"unblocked @{user}")
    return EXIT_OK


async def blocked(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        handles = await client.blocked()
    for handle in handles:
        print(f"@{handle}")
    return EXIT_OK
