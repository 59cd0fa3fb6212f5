"""The CLI's commands, each an async function ``(args) -> exit code`` over the SDK.

Commands raise SDK exceptions or :class:`CliError`; :mod:`taube.cli.main` turns
them into one-line messages and exit codes. Normal output goes to stdout
(machine-usable where it matters: ``group create`` prints only the id);
progress and notices go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Final

from taube.cli import render
from taube.client import (
    Api,
    Client,
    Connected,
    Disconnected,
    GroupChange,
    Message,
    Notice,
    NotLoggedIn,
    Profile,
    Receipt,
    SecurityCodeChanged,
    SendFailed,
    SendTimeout,
    ServerError,
    ServiceStatus,
    TaubeApiError,
    Typing,
    decode_content,
    default_profile_dir,
    normalize_servers,
)
from taube.client import (
    login as sdk_login,
)
from taube.client import (
    logout as sdk_logout,
)
from taube.client import (
    register as sdk_register,
)
from taube.client.content import content_text
from taube.protocol.api import GroupInfo
from taube.protocol.ids import normalize_handle, parse_address

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_AUTH: Final = 4
DEFAULT_SERVER: Final = "http://127.0.0.1:8080"


class CliError(Exception):
    def __init__(self, code: str, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.exit_code = exit_code


# --------------------------------------------------------------------------- context


def profile_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "profile", None) or os.environ.get("TAUBE_PROFILE")
    return Path(given).expanduser() if given else default_profile_dir()


def explicit_servers(args: argparse.Namespace) -> tuple[str, ...] | None:
    """Servers named on the command line or in TAUBE_SERVER, else None."""
    given = getattr(args, "server", None) or os.environ.get("TAUBE_SERVER")
    return normalize_servers(given) if given else None


def servers_for_login(args: argparse.Namespace) -> tuple[str, ...]:
    return explicit_servers(args) or normalize_servers(DEFAULT_SERVER)


def open_api(args: argparse.Namespace) -> Api:
    """An authenticated API client from the profile's session."""
    with Profile.open(profile_dir(args)) as profile:
        session = profile.session()
    if session is None:
        raise NotLoggedIn("not logged in on this profile; run `taube login HANDLE` first")
    return Api(explicit_servers(args) or session.servers, session.token)


def given_status_url(args: argparse.Namespace) -> str | None:
    """``--status-url`` or TAUBE_STATUS_URL, else None (the profile's is used)."""
    return getattr(args, "status_url", None) or os.environ.get("TAUBE_STATUS_URL") or None


def make_client(args: argparse.Namespace) -> Client:
    return Client(profile_dir(args), explicit_servers(args), status_url=given_status_url(args))


def read_password(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            if confirm and getpass.getpass("Password (again): ") != password:
                raise CliError("client.usage", "the passwords differ", EXIT_USAGE)
        except EOFError:
            raise CliError(
                "client.usage", "no password given (use --password-stdin)", EXIT_USAGE
            ) from None
    if not password:
        raise CliError("client.usage", "the password is empty", EXIT_USAGE)
    return password


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- serve


def serve(args: argparse.Namespace) -> int:
    # Imported here so that client commands never load the server.
    from taube.server.app import serve as serve_node

    return serve_node(
        Path(args.config) if args.config else None,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data) if args.data else None,
        store=args.store,
        bus=args.bus,
        node=args.node,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def db_upgrade(args: argparse.Namespace) -> int:
    from taube.server.app import upgrade_database

    return upgrade_database(
        Path(args.config) if args.config else None,
        store=args.store,
        data_dir=Path(args.data) if args.data else None,
    )


# --------------------------------------------------------------------------- accounts


async def register(args: argparse.Namespace) -> int:
    password = read_password(args, confirm=True)
    session = await sdk_register(
        args.handle,
        password,
        servers=servers_for_login(args),
        profile=profile_dir(args),
        device_name=args.device_name,
        status_url=given_status_url(args),
    )
    print(f"registered @{session.handle}, logged in as device {session.device}")
    return EXIT_OK


async def login(args: argparse.Namespace) -> int:
    password = read_password(args, confirm=False)
    totp: str | None = getattr(args, "totp", None)
    while True:
        try:
            session = await sdk_login(
                args.handle,
                password,
                servers=servers_for_login(args),
                profile=profile_dir(args),
                device_name=args.device_name,
                status_url=given_status_url(args),
                totp=totp,
            )
            break
        except TaubeApiError as exc:
            if exc.code != "auth.totp_required" or totp:
                raise
            totp = read_code("This account has two-step verification on. Code: ")
    print(f"logged in as @{session.handle}, device {session.device}")
    return EXIT_OK


def read_code(prompt: str) -> str:
    """A two-step verification code from the terminal (or the next line of stdin)."""
    try:
        if sys.stdin.isatty():
            code = input(prompt)
        else:
            note(prompt.rstrip())
            code = sys.stdin.readline()
    except EOFError:
        code = ""
    code = code.strip().replace(" ", "")
    if not code:
        raise CliError("client.usage", "no code given (use --totp CODE)", EXIT_USAGE)
    return code


async def two_step_enable(args: argparse.Namespace) -> int:
    """Show a new secret as an otpauth URI and QR code; a code from the app turns it on."""
    async with open_api(args) as api:
        setup = await api.start_totp()
        print("Add this account to your authenticator app (scan the QR code or enter the")
        print(f"secret {setup.secret}):\n")
        print(render.qr_text(setup.uri.encode()))
        print(setup.uri)
        code = args.code or read_code("Code from the app: ")
        await api.confirm_totp(code)
    print("two-step verification is on: logins and device links now need a code")
    return EXIT_OK


async def two_step_disable(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        await api.disable_totp(args.code or read_code("Current code from the app: "))
    print("two-step verification is off")
    return EXIT_OK


async def change_password(args: argparse.Namespace) -> int:
    """Old password, then the new one twice (or two lines of stdin: old, new)."""
    if args.password_stdin:
        old = sys.stdin.readline().rstrip("\r\n")
        new = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            old = getpass.getpass("Current password: ")
            new = getpass.getpass("New password: ")
            if getpass.getpass("New password (again): ") != new:
                raise CliError("client.usage", "the passwords differ", EXIT_USAGE)
        except EOFError:
            raise CliError(
                "client.usage", "no password given (use --password-stdin)", EXIT_USAGE
            ) from None
    if not old or not new:
        raise CliError("client.usage", "a password is empty", EXIT_USAGE)
    async with open_api(args) as api:
        await api.change_password(old, new, revoke_other_devices=args.revoke_others)
    print(
        "password changed; every other device is logged out"
        if args.revoke_others
        else "password changed"
    )
    return EXIT_OK


async def logout(args: argparse.Namespace) -> int:
    await sdk_logout(profile_dir(args), servers=explicit_servers(args))
    print("logged out")
    return EXIT_OK


async def whoami(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        me = await api.me()
        server = api.active_server
    with Profile.open(profile_dir(args)) as profile:
        queued = profile.outbox_count()
    print(f"@{me.handle} device {me.device} on {server}")
    if me.hide_presence:
        print("presence: hidden")
    if queued:
        print(f"outbox: {queued} message(s) queued")
    return EXIT_OK


async def devices_list(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        devices = await api.devices()
    for d in devices:
        mark = "  (this device)" if d.current else ""
        name = d.name or "-"
        print(f"{d.id:>4}  {name:<20}  last active {render.local_time(d.last_active_ms)}{mark}")
    return EXIT_OK


async def devices_revoke(args: argparse.Namespace) -> int:
    with Profile.open(profile_dir(args)) as profile:
        session = profile.session()
    async with open_api(args) as api:
        await api.revoke_device(args.device_id)
    if session is not None and session.device == args.device_id:
        with Profile.open(profile_dir(args)) as profile:
            profile.clear_session()
        print(f"revoked device {args.device_id} (this device): logged out")
    else:
        print(f"revoked device {args.device_id}")
    return EXIT_OK


async def lookup(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        user = await api.user(args.handle)
    devices = ", ".join(str(d) for d in user.devices) or "none"
    print(f"@{user.handle} devices: {devices}")
    return EXIT_OK


async def settings(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        if args.hide_presence is None:
            me = await api.me()
        else:
            me = await api.update_settings(hide_presence=args.hide_presence)
    print(f"hide presence: {'yes' if me.hide_presence else 'no'}")
    return EXIT_OK


# --------------------------------------------------------------------------- messages


def check_address(to: str) -> str:
    to = to.strip()
    if parse_address(to) is None:
        raise CliError(
            "client.usage",
            f"{to!r} is not an address: use @handle for a user or #groupid for a group",
            EXIT_USAGE,
        )
    return to


async def send(args: argparse.Namespace) -> int:
    to = check_address(args.to)
    if args.stdin == (args.text is not None):
        raise CliError("client.usage", "give either TEXT or --stdin (not both)", EXIT_USAGE)
    # Reading all of stdin first lets the whole batch enter the outbox in one
    # transaction; a line that is empty is skipped (nothing to send).
    texts = [line.rstrip("\r\n") for line in sys.stdin] if args.stdin else [args.text]
    texts = [t for t in texts if t]
    if not texts:
        raise CliError("client.usage", "nothing to send", EXIT_USAGE)
    async with make_client(args) as client:
        earlier = len(client.pending())
        await client.send_many([(to, text) for text in texts])
        code = await flush_outbox(client, args.timeout)
    if code == EXIT_OK:
        extra = f" (and {earlier} queued earlier)" if earlier else ""
        note(f"sent {len(texts)} message(s){extra}")
    return code


async def flush_outbox(client: Client, seconds: float) -> int:
    """Wait until the outbox is empty; report refusals and what is still queued."""
    waiting = [e.id for e in client.pending()]
    failed: list[TaubeApiError] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    # While no server answers, say what the status document says (not a bare error).
    watcher = asyncio.create_task(_print_service_status(client))
    try:
        while waiting:
            try:
                await client.wait_sent(waiting, timeout=max(0.0, deadline - loop.time()))
                waiting = []
            except TaubeApiError as exc:
                failed.append(exc)
                waiting = [i for i in waiting if i != exc.ref]
            except SendTimeout as exc:
                for error in failed:
                    note(f"error: {error.code}: {error.message} (message {error.ref})")
                raise CliError(
                    "client.timeout", _still_queued(client, len(exc.pending), seconds),
                    EXIT_UNAVAILABLE,
                ) from None  # fmt: skip
    finally:
        watcher.cancel()
    if failed:
        for error in failed[:-1]:
            note(f"error: {error.code}: {error.message} (message {error.ref})")
        last = failed[-1]
        raise CliError(last.code, f"{last.message} (message {last.ref})", EXIT_ERROR)
    return EXIT_OK


def _queued_during(status: ServiceStatus | None) -> str:
    if status is None or not status.incidents:
        return ""
    return f" during incident {status.incidents[0].ref}"


def _still_queued(client: Client, n: int, seconds: float) -> str:
    status = client.service_status
    where = ", ".join(client.servers)
    later = (
        "they will be sent after recovery by the next command that connects "
        "(e.g. `taube outbox flush`)"
    )
    if status is None:
        return f"could not reach {where} in {seconds:g}s: {n} message(s) still queued; {later}"
    return f"{status.text}. {n} message(s) still queued{_queued_during(status)}; {later}"


def service_status_line(status: ServiceStatus) -> str:
    return f"status: {status.text}"


async def _print_service_status(client: Client) -> None:
    while True:
        status = await client.wait_service_status()
        extra = f" — your messages stay queued{_queued_during(status)}"
        note(service_status_line(status) + extra)


async def outbox_list(args: argparse.Namespace) -> int:
    with Profile.open(profile_dir(args)) as profile:
        entries = profile.outbox()
    for e in entries:
        text = content_text(decode_content(e.payload))
        preview = (text if text is not None else "(unsupported content)").replace("\n", " ")
        if len(preview) > 60:
            preview = preview[:57] + "..."
        during = f"  (queued during incident {e.incident})" if e.incident else ""
        print(f"{e.id}  {render.local_time(e.created_ms)}  {e.to}  {preview}{during}")
    note(f"{len(entries)} message(s) queued")
    return EXIT_OK


async def outbox_flush(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        n = len(client.pending())
        code = await flush_outbox(client, args.timeout)
    if code == EXIT_OK:
        note(f"sent {n} queued message(s)")
    return code


async def listen(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CliError("client.usage", "--count must be at least 1", EXIT_USAGE)
    received = 0
    ever_connected = False
    cut_off = False  # a status was shown: repeated "disconnected" lines add nothing
    async with make_client(args) as client:
        me = client.handle
        try:
            async with asyncio.timeout(args.timeout):
                async for event in client.events():
                    match event:
                        case Message():
                            received += 1
                            out(render.message_json(event) if args.json else None,
                                render.message_line(event, me))  # fmt: skip
                            if args.read and event.sender != me:
                                await client.mark_read(event.conversation, event.sender, [event.id])
                            if args.count is not None and received >= args.count:
                                break
                        case Receipt():
                            out(render.receipt_json(event) if args.json else None,
                                render.receipt_line(event))  # fmt: skip
                        case GroupChange():
                            out(render.group_json(event) if args.json else None,
                                render.group_line(event))  # fmt: skip
                        case Connected():
                            ever_connected, cut_off = True, False
                            note(f"connected to {event.server} as @{event.handle}")
                        case Disconnected() if not cut_off:
                            note(f"disconnected: {event.reason}; retrying in {event.retry_in:.1f}s")
                        case ServiceStatus():
                            cut_off = True  # stderr: stdout stays messages for scripts
                            note(service_status_line(event) + "; still trying to connect")
                        case SendFailed():
                            note(f"error: {event.code}: {event.message} (message {event.id})")
                        case ServerError():
                            note(f"error: {event.code}: {event.message}")
                        case Notice():
                            signed = ", signed" if event.signed else ""
                            note(f"notice ({event.level}{signed}): {event.text}")
                        case SecurityCodeChanged():
                            note(render.security_code_changed(event.user))
                        case Typing() if not args.json:
                            if event.active:
                                note(f"@{event.user} is typing in {event.conversation}")
                        case _:
                            pass
        except TimeoutError:
            pass
    if args.count is not None and received < args.count:
        why = "" if ever_connected else " (never connected)"
        raise CliError(
            "client.timeout",
            f"received {received} of {args.count} message(s) in {args.timeout:g}s{why}",
            EXIT_UNAVAILABLE,
        )
    if not ever_connected:
        raise CliError("client.timeout", "never connected to a server", EXIT_UNAVAILABLE)
    return EXIT_OK


async def safety_number(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with make_client(args) as client:
        number, verified = await client.safety_number(user)
    if args.json:
        print(render.json_line({"user": user, "safety_number": number.digits,
                                "verified": verified}))  # fmt: skip
        return EXIT_OK
    print(f"Safety number with @{user} (compare it with theirs, in person or on a call):")
    print()
    groups = number.formatted().split()
    for row in range(0, len(groups), 4):
        print("    " + " ".join(groups[row : row + 4]))
    print()
    print(render.qr_text(number.scannable))
    if verified:
        print(f"You verified @{user}'s keys; they have not changed since.")
    else:
        print(f"Not verified. If the numbers match, run: taube verify @{user}")
    return EXIT_OK


async def verify(args: argparse.Namespace) -> int:
    user = check_handle(args.handle)
    async with make_client(args) as client:
        number = await client.verify(user)
    note(f"verified @{user} (safety number {number.formatted()[:11]}...)")
    return EXIT_OK


def check_handle(text: str) -> str:
    address = parse_address(text.strip() if text.startswith("@") else f"@{text.strip()}")
    if address is None or address[0] != "user":
        raise CliError("client.usage", f"{text!r} is not a user: use @handle", EXIT_USAGE)
    return address[1]


def out(obj: dict[str, object] | None, line: str) -> None:
    print(render.json_line(obj) if obj is not None else line, flush=True)


# --------------------------------------------------------------------------- groups


def _members(handles: list[str]) -> list[str]:
    return [normalize_handle(h) for h in handles]


def print_group(info: GroupInfo) -> None:
    print(f"{info.address}  {info.name}")
    for m in info.members:
        print(f"  @{m.handle}{'  (admin)' if m.admin else ''}")


async def group_create(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        info = await api.create_group(args.name, _members(args.members))
    print(info.id)
    return EXIT_OK


async def group_list(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        groups = await api.groups()
    for g in groups:
        print(f"{g.address}  {g.name}  ({len(g.members)} members)")
    return EXIT_OK


async def group_members(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        print_group(await api.group(args.group))
    return EXIT_OK


async def group_add(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        print_group(await api.add_members(args.group, _members(args.handles)))
    return EXIT_OK


async def group_remove(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        info: GroupInfo | None = None
        for handle in _members(args.handles):
            info = await api.remove_member(args.group, handle)
    if info is not None:
        print_group(info)
    return EXIT_OK


async def group_promote(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        print_group(await api.add_admins(args.group, _members(args.handles)))
    return EXIT_OK


async def group_leave(args: argparse.Namespace) -> int:
    with Profile.open(profile_dir(args)) as profile:
        session = profile.session()
    async with open_api(args) as api:
        assert session is not None  # open_api checked it
        await api.remove_member(args.group, session.handle)
    print(f"left #{args.group.removeprefix('#')}")
    return EXIT_OK


async def group_rename(args: argparse.Namespace) -> int:
    async with open_api(args) as api:
        print_group(await api.rename_group(args.group, args.name))
    return EXIT_OK


# --------------------------------------------------------------------------- device linking


async def link(args: argparse.Namespace) -> int:
    """Approve a code shown by a new device: it joins this account."""
    async with open_api(args) as api:
        totp: str | None = args.totp
        while True:
            try:
                linked = await api.approve_link(args.code, totp)
                break
            except TaubeApiError as exc:
                if exc.code != "auth.totp_required" or totp:
                    raise
                totp = read_code("This account has two-step verification on. Code: ")
        names = {d.id: d.name for d in await api.devices()}
    name = names.get(linked.device) or "unnamed"
    print(f"linked device {linked.device} ({name}) to @{linked.handle}")
    return EXIT_OK


# --------------------------------------------------------------------------- service notices

_TTL_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``30m``, ``24h`` or ``7d``."""
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _TTL_UNITS else (text, "s")
    if not number.isdigit() or int(number) == 0:
        raise CliError(
            "client.usage", f"{text!r} is not a duration: use e.g. 90s, 30m, 24h or 7d", EXIT_USAGE
        )
    return int(number) * _TTL_UNITS[unit]


def admin_servers(args: argparse.Namespace) -> tuple[str, ...]:
    """The servers to run an operator's command on: as given, else the profile's."""
    explicit = explicit_servers(args)
    if explicit is not None:
        return explicit
    with Profile.open(profile_dir(args)) as profile:
        session = profile.session()
    return session.servers if session is not None else normalize_servers(DEFAULT_SERVER)


async def notice(args: argparse.Namespace) -> int:
    """Post, list or end service notices with the server's admin token."""
    token = args.admin_token or os.environ.get("TAUBE_ADMIN_TOKEN", "")
    if not token:
        hint = "no admin token: give --admin-token or set TAUBE_ADMIN_TOKEN"
        raise CliError("client.usage", hint, EXIT_USAGE)
    if sum((args.text is not None, args.list, args.end is not None)) != 1:
        raise CliError("client.usage", "give TEXT, --list or --end ID (one of them)", EXIT_USAGE)
    async with Api(admin_servers(args)) as api:
        if args.list:
            for n in await api.admin_notices(token):
                until = render.local_time(n.expires_ms)
                print(f"{n.id}  {n.level:<7}  until {until}  {n.text}")
        elif args.end is not None:
            await api.end_notice(token, args.end)
            print(f"ended notice {args.end}")
        else:
            posted = await api.post_notice(token, args.text, args.level, parse_ttl(args.ttl))
            note(f"posted {posted.level} notice until {render.local_time(posted.expires_ms)}")
            print(posted.id)
    return EXIT_OK


def bench(args: argparse.Namespace) -> int:
    """Run ``taube bench``; the load generator is imported only when it is used."""
    from taube.bench import BenchError, run_cli

    try:
        return run_cli(args)
    except BenchError as exc:
        raise CliError(exc.code, exc.message) from None
