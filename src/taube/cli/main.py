"""The ``taube`` program: argument parsing, dispatch, and the error -> exit code policy.

Every expected failure (server down, bad handle, not logged in, refused
request) ends as one line on stderr, ``error: <code>: <message>``, and a
non-zero exit code; tracebacks are for bugs only. Codes from the server are
its stable codes; the CLI's own start with ``client.``.

Exit codes: 0 ok, 1 refused by the server or a local error, 2 usage,
3 server unreachable or timed out (queued messages stay in the outbox),
4 not logged in, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from taube.cli import abuse as abuse_cli
from taube.cli import commands, rich
from taube.cli import status as status_cli
from taube.cli.commands import EXIT_AUTH, EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_USAGE, CliError
from taube.client import (
    NotLoggedIn,
    ServerUnreachable,
    TaubeApiError,
    TaubeClientError,
    UntrustedIdentity,
)

DESCRIPTION = """\
Taube: a self-hostable messenger. Run a server with `taube serve`, then
register (or log in) a device and send and receive messages.

Your device's session, its outbox of not-yet-sent messages and its place in
the inbox live in a profile folder (one per device/user on this machine).
"""

EPILOG = """\
examples:
  taube serve --port 8080 --data ./data
  taube register alice
  taube send @bob "hello"
  seq 1 10 | taube send @bob --stdin
  taube listen --json --count 10
  taube group create friends @bob @carol
  taube status
  taube status export ./public --every 30s
  taube bench --server http://127.0.0.1:8080 --pairs 100 --duration 20s

exit codes: 0 ok, 1 refused or failed, 2 usage, 3 server unreachable or
timed out (messages stay queued), 4 not logged in, 130 interrupted.
"""


def _common() -> argparse.ArgumentParser:
    # SUPPRESS defaults let these options appear before or after the
    # subcommand without the subparser's defaults erasing the earlier value.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--server",
        metavar="URL[,URL...]",
        default=argparse.SUPPRESS,
        help="server URL, or a comma-separated list tried in order for failover "
        "(env TAUBE_SERVER; default: the servers saved at login, else http://127.0.0.1:8080)",
    )
    group.add_argument(
        "--profile",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="profile folder holding this device's session and outbox "
        "(env TAUBE_PROFILE; default $XDG_DATA_HOME/taube or ~/.local/share/taube)",
    )
    group.add_argument(
        "--status-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="where to read the signed status document when no server answers, e.g. an "
        "exported copy (env TAUBE_STATUS_URL; saved in the profile by login/register)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="taube",
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=text, description=text, parents=[common])

    p = add(sub, "serve", "Run a Taube server (blocks until Ctrl-C / SIGTERM).")
    p.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port to listen on (default from config: 8080)")
    p.add_argument("--data", metavar="DIR", help="folder for the server's database")
    p.add_argument("--config", metavar="FILE.toml", help="server configuration file")
    p.add_argument(
        "--store",
        metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: SQLite in --data)",
    )
    p.add_argument(
        "--bus", metavar="URL", help="local (default) or nats://HOST:PORT[,nats://...] (cluster)"
    )
    p.add_argument("--node", metavar="NAME", help="this node's name (default: host-port)")
    p.add_argument("--tls-cert", metavar="PEM", help="certificate chain: serve HTTPS and WSS")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.set_defaults(func=commands.serve, needs_loop=False)

    db = add(sub, "db", "Manage the server's database.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = add(
        db_sub,
        "upgrade",
        "Create or migrate the store's schema in place (take a backup first), then exit.",
    )
    p.add_argument("--store", metavar="URL", help="the store URL (default from config)")
    p.add_argument("--data", metavar="DIR", help="folder of the SQLite database")
    p.add_argument("--config", metavar="FILE.toml", help="server configuration file")
    p.set_defaults(func=commands.db_upgrade, needs_loop=False)

    for name, text in (
        ("register", "Create an account and log this device in (saved in the profile)."),
        ("login", "Log this device into an existing account (saved in the profile)."),
    ):
        p = add(sub, name, text)
        p.add_argument("handle", metavar="HANDLE", help="the account's handle, e.g. alice")
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of prompting",
        )
        p.add_argument(
            "--device-name", default="", help="a name for this device, shown in `taube devices`"
        )
        if name == "login":
            p.add_argument(
                "--totp",
                metavar="CODE",
                help="the two-step verification code (asked for when the account needs one)",
            )
        p.set_defaults(func=commands.register if name == "register" else commands.login)

    p = add(sub, "password", "Change this account's password.")
    p.add_argument(
        "--revoke-others",
        action="store_true",
        help="also log out every other device of the account (their tokens stop working)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current and the new password from two lines of stdin",
    )
    p.set_defaults(func=commands.change_password)

    p = add(sub, "2fa", "Two-step verification: a code from an authenticator app at login.")
    tsub = p.add_subparsers(dest="two_step_command", metavar="ACTION", required=True)
    tp = add(tsub, "enable", "Turn it on: shows a QR code to scan, then asks for a code.")
    tp.add_argument("--code", help="the code from the app (else asked for)")
    tp.set_defaults(func=commands.two_step_enable)
    tp = add(tsub, "disable", "Turn it off (needs a current code).")
    tp.add_argument("--code", help="a current code from the app (else asked for)")
    tp.set_defaults(func=commands.two_step_disable)

    p = add(sub, "logout", "Revoke this device on the server and forget its token.")
    p.set_defaults(func=commands.logout)

    p = add(sub, "whoami", "Show the account and device of this profile.")
    p.set_defaults(func=commands.whoami)

    p = add(sub, "devices", "List this account's devices, or revoke one.")
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION")
    p.set_defaults(func=commands.devices_list)
    dp = add(dsub, "list", "List this account's devices (the default).")
    dp.set_defaults(func=commands.devices_list)
    dp = add(dsub, "revoke", "Revoke a device; revoking this very device logs it out.")
    dp.add_argument("device_id", metavar="ID", type=int, help="device id from `taube devices`")
    dp.set_defaults(func=commands.devices_revoke)

    p = add(sub, "lookup", "Show whether a user exists and their device ids.")
    p.add_argument("handle", metavar="@HANDLE", help="the user to look up")
    p.set_defaults(func=commands.lookup)

    p = add(sub, "settings", "Show or change account settings.")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument(
        "--hide-presence",
        dest="hide_presence",
        action="store_const",
        const=True,
        help="appear always offline, without last seen",
    )
    vis.add_argument(
        "--show-presence",
        dest="hide_presence",
        action="store_const",
        const=False,
        help="let watchers see when you are online",
    )
    p.set_defaults(func=commands.settings, hide_presence=None)

    p = add(
        sub,
        "send",
        "Send a message (or one per stdin line). Exits 0 once the server stored all of them.",
    )
    p.add_argument("to", metavar="TO", help="@handle or #groupid")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the message text")
    p.add_argument(
        "--stdin",
        action="store_true",
        help="read messages from stdin, one per line, sent in order",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up waiting after this long (default 30); unsent messages stay queued "
        "in the outbox and the exit code is 3",
    )
    p.add_argument("--reply-to", metavar="ID", help="quote this message (an id from history)")
    p.set_defaults(func=rich.send)

    def timeout_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=30.0, metavar="SECONDS",
            help="give up waiting for the server after this long (default 30)",
        )  # fmt: skip

    p = add(sub, "react", "React to a message with an emoji (--remove takes it back).")
    p.add_argument("message_id", metavar="ID", help="message id (from `taube history`)")
    p.add_argument("emoji", nargs="?", help="e.g. 👍")
    p.add_argument("--remove", action="store_true", help="remove your reaction")
    timeout_option(p)
    p.set_defaults(func=rich.react)

    p = add(sub, "edit", "Change the text of your own message (within 15 minutes).")
    p.add_argument("message_id", metavar="ID")
    p.add_argument("text", metavar="TEXT")
    timeout_option(p)
    p.set_defaults(func=rich.edit)

    p = add(sub, "delete", "Delete a message for everyone (yours, or any as group admin).")
    p.add_argument("message_id", metavar="ID")
    p.add_argument("--for-everyone", action="store_true", help="remove it on every device")
    timeout_option(p)
    p.set_defaults(func=rich.delete)

    p = add(sub, "poll", "Ask a question with 2 to 12 options.")
    p.add_argument("to", metavar="TO", help="@handle or #groupid")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("options", metavar="OPTION", nargs="+")
    p.add_argument("--multiple", action="store_true", help="allow choosing several options")
    timeout_option(p)
    p.set_defaults(func=rich.poll)

    p = add(sub, "vote", "Vote in a poll (option text or number; again to change your vote).")
    p.add_argument("poll_id", metavar="POLL_ID")
    p.add_argument("choices", metavar="OPTION", nargs="*", help="none: take your vote back")
    timeout_option(p)
    p.set_defaults(func=rich.vote)

    p = add(sub, "send-file", "Send a file, encrypted on this device (up to the server's limit).")
    p.add_argument("to", metavar="TO", help="@handle or #groupid")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--caption", help="text shown with the file")
    timeout_option(p)
    p.set_defaults(func=rich.send_file)

    p = add(sub, "download", "Save the file of a message (verified and decrypted).")
    p.add_argument("message_id", metavar="ID")
    p.add_argument("--out", metavar="PATH", help="file or folder (default: its name, here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=rich.download)

    p = add(sub, "chats", "Your conversations: last message, time, unread count.")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--offline", action="store_true", help="do not fetch new messages first")
    p.set_defaults(func=rich.chats)

    p = add(sub, "history", "What this device has stored of a conversation, newest last.")
    p.add_argument("conversation", metavar="@HANDLE|#GROUP")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--offline", action="store_true", help="do not fetch new messages first")
    p.add_argument("--mark-read", action="store_true", help="mark the chat read (blue ticks)")
    p.set_defaults(func=rich.history)

    p = add(sub, "disappearing", "New messages in this chat vanish after DURATION (or off).")
    p.add_argument("conversation", metavar="@HANDLE|#GROUP")
    p.add_argument("duration", metavar="DURATION", help="e.g. 24h, 7d, 90d, or off")
    timeout_option(p)
    p.set_defaults(func=rich.disappearing)

    p = add(sub, "block", "Block a user: no messages from them, no presence for them.")
    p.add_argument("handle", metavar="@HANDLE")
    p.set_defaults(func=rich.block)

    p = add(sub, "unblock", "Unblock a user.")
    p.add_argument("handle", metavar="@HANDLE")
    p.set_defaults(func=rich.unblock)

    p = add(sub, "blocked", "List the users you blocked.")
    p.set_defaults(func=rich.blocked)

    p = add(
        sub,
        "safety-number",
        "Show the safety number (and its QR code) to compare with a contact's.",
    )
    p.add_argument("handle", metavar="@HANDLE", help="the contact")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=commands.safety_number)

    p = add(sub, "verify", "Mark a contact's current keys as verified (after comparing numbers).")
    p.add_argument("handle", metavar="@HANDLE", help="the contact")
    p.set_defaults(func=commands.verify)

    p = add(sub, "listen", "Print incoming messages, receipts and group changes as they arrive.")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--count", type=int, metavar="N", help="exit (code 0) after receiving N messages"
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="exit after this long: code 0 without --count, 3 if --count was not reached",
    )
    p.add_argument(
        "--read",
        action="store_true",
        help="also send read receipts for printed messages (delivery acks are always sent)",
    )
    p.set_defaults(func=commands.listen)

    p = add(sub, "outbox", "List messages waiting to be sent, or flush them.")
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION")
    p.set_defaults(func=commands.outbox_list)
    op = add(osub, "list", "List queued messages, oldest first (the default).")
    op.set_defaults(func=commands.outbox_list)
    op = add(osub, "flush", "Connect and send every queued message, in order.")
    op.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up after this long (default 30; exit code 3, messages stay queued)",
    )
    op.set_defaults(func=commands.outbox_flush)

    p = add(sub, "group", "Create and manage groups (GROUP is the id, with or without '#').")
    gsub = p.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    gp = add(gsub, "create", "Create a group; prints its id (send to it as '#<id>').")
    gp.add_argument("name", metavar="NAME", help="the group's name")
    gp.add_argument("members", metavar="@MEMBER", nargs="*", help="members besides you")
    gp.set_defaults(func=commands.group_create)
    gp = add(gsub, "list", "List the groups you are in.")
    gp.set_defaults(func=commands.group_list)
    gp = add(gsub, "members", "Show a group's name and members (admins marked).")
    gp.add_argument("group", metavar="GROUP")
    gp.set_defaults(func=commands.group_members)
    for name, text in (
        ("add", "Add members (admins only)."),
        ("remove", "Remove members (admins only)."),
        ("promote", "Make members admins (admins only)."),
    ):
        gp = add(gsub, name, text)
        gp.add_argument("group", metavar="GROUP")
        gp.add_argument("handles", metavar="@HANDLE", nargs="+")
        gp.set_defaults(
            func={
                "add": commands.group_add,
                "remove": commands.group_remove,
                "promote": commands.group_promote,
            }[name]
        )
    gp = add(gsub, "leave", "Leave a group.")
    gp.add_argument("group", metavar="GROUP")
    gp.set_defaults(func=commands.group_leave)
    gp = add(gsub, "rename", "Rename a group.")
    gp.add_argument("group", metavar="GROUP")
    gp.add_argument("name", metavar="NAME")
    gp.set_defaults(func=commands.group_rename)
    p = add(sub, "link", "Approve a new device's link code: it joins this account.")
    p.add_argument("code", metavar="CODE", help="the code the new device shows, e.g. 7K3M-Q9XD")
    p.add_argument(
        "--totp",
        metavar="CODE",
        help="the two-step verification code (asked for when the account needs one)",
    )
    p.set_defaults(func=commands.link)

    p = add(
        sub,
        "notice",
        "Post a service notice to every client, list the current ones, or end one "
        "(operators: needs the server's admin token).",
    )
    p.add_argument("text", metavar="TEXT", nargs="?", help="the notice (1 to 500 characters)")
    p.add_argument(
        "--level", choices=("info", "warning", "outage"), default="info", help="default info"
    )
    p.add_argument("--ttl", default="24h", help="how long it shows, e.g. 30m, 24h (default 24h)")
    p.add_argument("--list", action="store_true", help="list the current notices")
    p.add_argument("--end", metavar="ID", help="end a notice now")
    p.add_argument(
        "--admin-token", default="", help="the server's [admin] token (env TAUBE_ADMIN_TOKEN)"
    )
    p.set_defaults(func=commands.notice)

    _add_status(sub, add)
    abuse_cli.add_commands(sub, add)
    _add_bench(add(sub, "bench", BENCH_HELP))
    return parser


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: Any) -> None:
    p = add(
        sub,
        "status",
        "Show the service's status: components, 90-day uptime, latency, objectives, "
        "incidents, maintenance (signed; read from the status URL when no server answers).",
    )
    p.add_argument(
        "--json", action="store_true", help='the document plus {"fresh", "verified"}, one line'
    )
    p.add_argument(
        "--max-age", default="2m", help="older documents are stale: status unknown (default 2m)"
    )
    p.set_defaults(func=status_cli.status, status_command=None)
    ssub = p.add_subparsers(dest="status_command", metavar="ACTION")
    sp = add(
        ssub,
        "export",
        "Write index.html, status.css, status.json and feed.atom into DIR (atomically), "
        "for any static host outside the nodes' blast radius.",
    )
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--every", metavar="DURATION", help="keep exporting this often, e.g. 30s")
    sp.add_argument("--count", type=int, metavar="N", help="with --every: stop after N rounds")
    sp.add_argument(
        "--max-age",
        default="2m",
        help="with --every, while no node answers: once the copy is this old its page "
        "says status unknown (default 2m)",
    )
    sp.set_defaults(func=status_cli.status_export)

    p = add(sub, "report", "Tell the operators you have trouble (counted; spikes open incidents).")
    p.add_argument("kind", choices=("send", "receive", "connect"), help="what does not work")
    p.add_argument("--detail", default="", help="a few words (optional)")
    p.set_defaults(func=status_cli.report)

    def admin(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--admin-token", default="", help="the server's [admin] token (env TAUBE_ADMIN_TOKEN)"
        )
        return parser

    p = add(sub, "incident", "Open, update and resolve incidents (operators: admin token).")
    isub = p.add_subparsers(dest="incident_command", metavar="ACTION", required=True)
    ip = admin(add(isub, "open", "Open an incident; prints its id."))
    ip.add_argument("title", metavar="TITLE")
    ip.add_argument("--impact", choices=("minor", "major", "critical"), default="minor")
    ip.add_argument(
        "--component", action="append", default=[], metavar="ID", help="affected (repeatable)"
    )
    ip.add_argument("--text", required=True, help="what users notice, in plain words")
    ip.set_defaults(func=status_cli.incident_open)
    ip = admin(add(isub, "update", "Add an update to an incident's timeline."))
    ip.add_argument("id", metavar="ID")
    ip.add_argument("--status", choices=("investigating", "identified", "monitoring"),
                    required=True)  # fmt: skip
    ip.add_argument("--text", required=True)
    ip.set_defaults(func=status_cli.incident_update)
    ip = admin(add(isub, "resolve", "Resolve an incident; prints the post-mortem template."))
    ip.add_argument("id", metavar="ID")
    ip.add_argument("--text", required=True)
    ip.set_defaults(func=status_cli.incident_resolve)
    ip = admin(add(isub, "postmortem", "Publish an incident's post-mortem."))
    ip.add_argument("id", metavar="ID")
    ip.add_argument("--file", metavar="F", help="read it from this file ('-': stdin)")
    ip.add_argument("--text", metavar="T", help="or give it here")
    ip.set_defaults(func=status_cli.incident_postmortem)

    p = add(sub, "maintenance", "Announce scheduled maintenance (operators: admin token).")
    msub = p.add_subparsers(dest="maintenance_command", metavar="ACTION", required=True)
    mp = admin(add(msub, "schedule", "Schedule maintenance; prints its id."))
    mp.add_argument("title", metavar="TITLE")
    mp.add_argument("--start", required=True, metavar="ISO", help="e.g. 2025-05-03T22:00Z")
    mp.add_argument("--end", required=True, metavar="ISO")
    mp.add_argument("--component", action="append", default=[], metavar="ID")
    mp.add_argument("--text", default="")
    mp.set_defaults(func=status_cli.maintenance_schedule)

    p = add(sub, "webhook", "Tell other systems about incidents (operators: admin token).")
    wsub = p.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    wp = admin(add(wsub, "add", "Subscribe URL; deliveries are signed with SECRET (HMAC)."))
    wp.add_argument("url", metavar="URL")
    wp.add_argument("--secret", required=True)
    wp.set_defaults(func=status_cli.webhook_add)
    wp = admin(add(wsub, "list", "List the subscriptions."))
    wp.set_defaults(func=status_cli.webhook_list)
    wp = admin(add(wsub, "remove", "Remove a subscription."))
    wp.add_argument("id", metavar="ID")
    wp.set_defaults(func=status_cli.webhook_remove)
    wp = admin(add(wsub, "deliveries", "The delivery log: attempts, answers, retries."))
    wp.add_argument("--json", action="store_true", help="one JSON object per line")
    wp.set_defaults(func=status_cli.webhook_deliveries)


BENCH_HELP = (
    "Load-test a server with throwaway accounts: throughput (default), latency at a "
    "fixed --rate, --idle connections or --group-size fan-out (docs/performance.md)."
)


def _add_bench(p: argparse.ArgumentParser) -> None:
    # Values stay strings here; taube.bench parses them, so `taube --help` need not import it.
    w = p.add_argument_group("workload (default: pipelined throughput, Workload A)")
    w.add_argument("--pairs", type=int, default=100, help="sender/receiver pairs (default 100)")
    w.add_argument("--duration", default="20s", help="measured window, e.g. 20s (default 20s)")
    w.add_argument("--warmup", default="2s", help="warm-up before the window (default 2s)")
    w.add_argument("--drain", default="10s", help="wait at most this long for stragglers")
    w.add_argument("--rate", metavar="N/s", help="fixed aggregate rate, e.g. 5000/s (Workload B)")
    w.add_argument("--one-in-flight", action="store_true", help="one message in flight per pair")
    w.add_argument("--idle", type=int, metavar="N", help="N idle connections: RSS per connection")
    w.add_argument("--settle", default="5s", help="with --idle: wait before reading RSS")
    w.add_argument(
        "--group-size", type=int, metavar="N", help="one sender to a group of N (with --rate)"
    )
    w.add_argument("--max-in-flight", type=int, default=50, help="per pair (default 50)")
    w.add_argument("--top-up-at", type=int, default=25, help="top up when this few in flight")
    w.add_argument("--payload-bytes", type=int, default=100, help="message size (default 100)")
    w.add_argument(
        "--ack-delay", default="0ms", help="ack inbox items this late (default: once caught up)"
    )
    r = p.add_argument_group("running")
    r.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    r.add_argument("--accounts", metavar="FILE", help="save/reuse the throwaway accounts here")
    r.add_argument("--server-pid", type=int, metavar="PID", help="server process for CPU/RSS")
    r.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=commands.bench, needs_loop=False)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if not getattr(args, "needs_loop", True):
            return int(args.func(args))
        return int(asyncio.run(args.func(args)))
    except CliError as exc:
        return _fail(exc.code, exc.message, exc.exit_code)
    except NotLoggedIn as exc:
        hint = "" if exc.code is None else " (log in again: taube login HANDLE)"
        return _fail(exc.code or "client.not_logged_in", exc.message + hint, EXIT_AUTH)
    except ServerUnreachable as exc:
        return _fail("client.unreachable", str(exc), EXIT_UNAVAILABLE)
    except TaubeApiError as exc:
        return _fail(exc.code, exc.message, EXIT_ERROR)
    except UntrustedIdentity as exc:
        return _fail(exc.code, exc.message, EXIT_ERROR)
    except TaubeClientError as exc:
        return _fail("client.error", str(exc), EXIT_ERROR)
    except ValueError as exc:
        return _fail("client.usage", str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _fail(code: str, message: str, exit_code: int) -> int:
    print(f"error: {code}: {message}", file=sys.stderr)
    return exit_code


def main() -> None:
    """Console entry point (``taube``)."""
    sys.exit(run())


if __name__ == "__main__":
    main()
