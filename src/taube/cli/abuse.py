"""``taube report-abuse`` (a user) and ``taube admin reports|suspend|unsuspend`` (the
operator, with the server's admin token): see docs/security.md, "Abuse"."""

from __future__ import annotations

import argparse
import os
from typing import Any

from taube.cli import render
from taube.cli.commands import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    admin_servers,
    check_handle,
    make_client,
    note,
)
from taube.client import Api


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: Any) -> None:
    p = add(
        sub,
        "report-abuse",
        "Report a user to the operator with the messages you choose (from this device's "
        "history, as you see them); nothing else is sent.",
    )
    p.add_argument("handle", metavar="@HANDLE")
    p.add_argument("ids", metavar="ID", nargs="*", help="message ids to include (taube history)")
    p.add_argument("--reason", default="abuse", help="a few words for the operator")
    p.set_defaults(func=report_abuse)

    p = add(sub, "admin", "Review abuse reports and suspend accounts (operators: admin token).")
    asub = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    def admin(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--admin-token", default="", help="the server's [admin] token (env TAUBE_ADMIN_TOKEN)"
        )
        return parser

    ap = admin(add(asub, "reports", "The abuse review queue, newest last."))
    ap.add_argument("--json", action="store_true", help="one JSON object per report")
    ap.set_defaults(func=admin_reports)
    ap = admin(add(asub, "suspend", "Suspend an account: disconnected now, no login, no messages."))
    ap.add_argument("handle", metavar="@HANDLE")
    ap.add_argument("--reason", default="", help="why (kept with the suspension)")
    ap.set_defaults(func=admin_suspend)
    ap = admin(add(asub, "unsuspend", "Lift a suspension."))
    ap.add_argument("handle", metavar="@HANDLE")
    ap.set_defaults(func=admin_unsuspend)


def admin_token(args: argparse.Namespace) -> str:
    token: str = args.admin_token or os.environ.get("TAUBE_ADMIN_TOKEN", "")
    if not token:
        hint = "no admin token: give --admin-token or set TAUBE_ADMIN_TOKEN"
        raise CliError("client.usage", hint, EXIT_USAGE)
    return token


async def report_abuse(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with make_client(args) as client:
        report_id = await client.report_abuse(user, args.ids, args.reason)
    note(f"reported @{user} with {len(set(args.ids))} message(s) (report {report_id})")
    return EXIT_OK


async def admin_reports(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as api:
        reports = await api.abuse_reports(token)
    for r in reports:
        if args.json:
            print(render.json_line({
                "id": r.id, "reporter": r.reporter, "user": r.user, "reason": r.reason,
                "created_ms": r.created_ms, "suspended": r.suspended,
                "messages": [{"id": m.id, "sender": m.sender, "sent_at_ms": m.sent_at_ms,
                              "text": m.text} for m in r.messages],
            }))  # fmt: skip
            continue
        flag = "  (suspended)" if r.suspended else ""
        when = render.local_time(r.created_ms)
        print(f"#{r.id}  {when}  @{r.reporter} reported @{r.user}{flag}: {r.reason}")
        for m in r.messages:
            print(f"    {render.local_time(m.sent_at_ms)}  @{m.sender}  {m.id}  {m.text}")
    return EXIT_OK


async def admin_suspend(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with Api(admin_servers(args)) as api:
        await api.suspend(admin_token(args), user, args.reason)
    note(f"suspended @{user}: disconnected, cannot log in, send or be messaged")
    return EXIT_OK


async def admin_unsuspend(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with Api(admin_servers(args)) as api:
        await api.unsuspend(admin_token(args), user)
    note(f"lifted the suspension of @{user}")
    return EXIT_OK
