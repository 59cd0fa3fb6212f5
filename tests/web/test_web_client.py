"""The web client in a real Chromium against a real server (issue: "Web client").

Two browsers chat with ticks, typing, replies, reactions, edits, deletes, polls and
an image; a browser and the ``taube`` command line chat both ways; a browser is
linked as a new device by code; messages written while the server is down wait in
the browser's outbox and go out once, in order; an operator's notice shows as a
banner, marked signed (a forged one is never shown, an unsigned one is marked so);
the account's devices are listed and revoked; blocking; disappearing messages; the
status page's incident in the connection banner. Screenshots of the main screens
land in build/test-artifacts.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    WebSocketRoute,
    expect,
)

from taube.server.app import SIGNING_KEY_FILE
from taube.status.signing import Signer, parse_seed
from tests.serverproc import UNIT_S, ServerProcess
from tests.web.conftest import TIMEOUT_MS, PageFactory, screenshot

PASSWORD = "correct horse battery"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
STORED = re.compile(r"^(sent|delivered|read)$")
CODE = re.compile(r"^\s*[0-9A-Z]{4}-[0-9A-Z]{4}\s*$")


def cli(server: ServerProcess, profile: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "TAUBE_SERVER": server.url, "TAUBE_ADMIN_TOKEN": ADMIN_TOKEN}
    done = subprocess.run(
        [sys.executable, "-m", "taube.cli", "--profile", str(profile), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60 * UNIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def acli(server: ServerProcess, profile: Path, *args: str, stdin: str | None = None) -> str:
    return await asyncio.to_thread(cli, server, profile, *args, stdin=stdin)


async def register(page: Page, handle: str) -> None:
    await page.get_by_test_id("register-handle").fill(handle)
    await page.get_by_test_id("register-password").fill(PASSWORD)
    await page.get_by_test_id("register-submit").click()
    await expect(page.get_by_test_id("chat-list")).to_be_visible()


async def open_chat(page: Page, handle: str) -> None:
    item = page.locator(f'[data-testid="chat-item"][data-conversation="@{handle}"]')
    if await item.count() == 0:
        await page.get_by_test_id("new-chat").click()
        await page.get_by_test_id("new-chat-handle").fill(handle)
        await page.get_by_test_id("new-chat-submit").click()
    else:
        await item.first.click()
    await expect(page.get_by_test_id("composer")).to_be_visible()


async def write(page: Page, text: str) -> None:
    await page.get_by_test_id("composer").fill(text)
    await page.get_by_test_id("composer").press("Enter")


def bubble(page: Page, text: str) -> Locator:
    """The last message whose own text contains ``text`` (not a quote of it)."""
    own_text = page.get_by_test_id("message-text").filter(has_text=text)
    return page.get_by_test_id("message").filter(has=own_text).last


async def message_action(page: Page, text: str, action: str) -> None:
    """Open a message's actions (hover, or its ⋯ menu) and pick one."""
    message = bubble(page, text)
    await message.hover()
    button = message.get_by_test_id(action)
    if not await button.is_visible():
        await message.get_by_test_id("message-menu").click()
    await button.click()


async def test_two_browsers_chat_with_ticks_typing_and_every_kind_of_message(
    new_page: PageFactory, tmp_path: Path
) -> None:
    alice, bob = await new_page(), await new_page()
    await register(alice, "alice")
    await register(bob, "bob")
    await screenshot(alice, "01-chat-list-empty")
    await open_chat(alice, "bob")
    await write(alice, "Hallo Bob")
    sent = bubble(alice, "Hallo Bob")
    await expect(sent).to_have_attribute("data-status", STORED)
    # Bob's chat list shows the chat with an unread badge; opening it reads it.
    item = bob.locator('[data-testid="chat-item"][data-conversation="@alice"]')
    await expect(item.get_by_test_id("unread-badge")).to_have_text("1")
    await screenshot(bob, "02-chat-list-unread")
    await item.click()
    await expect(bubble(bob, "Hallo Bob")).to_be_visible()
    await expect(bubble(alice, "Hallo Bob")).to_have_attribute("data-status", "read")
    # Typing shows on the other side.
    await bob.get_by_test_id("composer").press_sequentially("Moment", delay=30)
    await expect(alice.get_by_test_id("typing-indicator")).to_be_visible()
    await bob.get_by_test_id("composer").fill("")

    # Reply, reaction, edit, delete for everyone.
    await message_action(bob, "Hallo Bob", "reply-button")
    await write(bob, "Hallo Alice")
    await expect(bubble(alice, "Hallo Alice").get_by_test_id("reply-quote")).to_contain_text(
        "Hallo Bob"
    )
    await message_action(bob, "Hallo Bob", "react-button")
    await bob.get_by_role("button", name="👍").first.click()
    await expect(bubble(alice, "Hallo Bob").get_by_test_id("reaction")).to_have_attribute(
        "data-emoji", "👍"
    )
    await message_action(alice, "Hallo Bob", "edit-button")
    await alice.get_by_test_id("edit-input").fill("Hallo Bob, wie geht's?")
    await alice.get_by_test_id("edit-submit").click()
    edited = bubble(bob, "wie geht's?")
    await expect(edited.get_by_test_id("edited-mark")).to_be_visible()
    await write(alice, "Das war falsch")
    await expect(bubble(bob, "Das war falsch")).to_be_visible()
    await message_action(alice, "Das war falsch", "delete-button")
    await expect(bob.get_by_test_id("deleted-text").last).to_be_visible()

    # A poll: bob votes, alice sees the count.
    await alice.get_by_test_id("poll-button").click()
    await alice.get_by_test_id("poll-question").fill("Wann essen?")
    await alice.get_by_test_id("poll-options").fill("18 Uhr\n19 Uhr")
    await alice.get_by_test_id("poll-submit").click()
    poll = bob.get_by_test_id("poll").last
    await expect(poll).to_contain_text("Wann essen?")
    await poll.locator('[data-testid="poll-option"][data-index="1"]').click()
    await expect(
        alice.get_by_test_id("poll").last.locator('[data-testid="poll-option"][data-index="1"]')
    ).to_contain_text("1")

    # An image: encrypted, uploaded, shown inline on the other side.
    png = tmp_path / "punkt.png"
    png.write_bytes(_tiny_png())
    await alice.get_by_test_id("attach-input").set_input_files(str(png))
    image = bob.get_by_test_id("attachment-image").last
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.naturalWidth") == 1
    await screenshot(bob, "03-conversation")
    await screenshot(alice, "04-conversation-sender")


async def test_a_browser_and_the_command_line_chat_both_ways(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await register(alice, "alice")
    await open_chat(alice, "bob")
    await write(alice, "Hallo von Chromium")
    got = await acli(server, bob, "listen", "--json", "--count", "1", "--timeout", "20")
    message = json.loads(got.splitlines()[0])
    assert (message["text"], message["from"], message["encrypted"]) == (
        "Hallo von Chromium",
        "alice",
        True,
    )
    await acli(server, bob, "send", "@alice", "Hallo von der Kommandozeile")
    await expect(bubble(alice, "Hallo von der Kommandozeile")).to_be_visible()


async def test_linking_this_browser_as_a_new_device_by_code(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob, carol = tmp_path / "bob-cli", tmp_path / "carol-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    await acli(server, carol, "register", "carol", "--password-stdin", stdin=PASSWORD + "\n")
    page = await new_page()
    await page.get_by_test_id("show-link").click()
    code = page.get_by_test_id("link-code")
    await expect(code).to_have_text(CODE)
    await screenshot(page, "05-link-device")
    await acli(server, bob, "link", (await code.inner_text()).strip())
    await expect(page.get_by_test_id("chat-list")).to_be_visible()
    await acli(server, carol, "send", "@bob", "Hallo Bobs neues Gerät")
    item = page.locator('[data-testid="chat-item"][data-conversation="@carol"]')
    await item.click()
    await expect(bubble(page, "Hallo Bobs neues Gerät")).to_be_visible()


async def test_messages_written_while_the_server_is_down_go_out_once_in_order(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await register(alice, "alice")
    await open_chat(alice, "bob")
    await write(alice, "vorher")
    await expect(bubble(alice, "vorher")).to_have_attribute("data-status", STORED)
    await asyncio.to_thread(server.stop)
    await expect(alice.get_by_test_id("connection-banner")).to_be_visible()
    for text in ("eins", "zwei", "drei"):
        await write(alice, text)
        await expect(bubble(alice, text)).to_have_attribute("data-status", "pending")
    await screenshot(alice, "06-offline-pending")
    await asyncio.to_thread(server.start)
    for text in ("eins", "zwei", "drei"):
        await expect(bubble(alice, text)).to_have_attribute(
            "data-status", STORED, timeout=int(30_000 * UNIT_S)
        )
    got = await acli(server, bob, "listen", "--json", "--count", "4", "--timeout", "20")
    texts = [json.loads(line)["text"] for line in got.splitlines()]
    assert texts == ["vorher", "eins", "zwei", "drei"]


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "admin-server", settings={"admin": {"token": ADMIN_TOKEN}})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_an_operator_notice_shows_as_a_banner(
    browser: Browser, admin_server: ServerProcess, tmp_path: Path
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        # Pass the client's WebSocket through, to slip frames of our own into it below.
        sockets: list[WebSocketRoute] = []

        def through(ws: WebSocketRoute) -> None:
            ws.connect_to_server()
            sockets.append(ws)

        await page.route_web_socket(re.compile(r"/v1/ws$"), through)
        dropped = [
            f"dropped notice {n}: its signature does not verify (forged?)"
            for n in ("forged-1", "forged-2")
        ]
        warnings: list[str] = []
        both_dropped = asyncio.Event()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "warning":
                warnings.append(message.text)
                if all(line in warnings for line in dropped):
                    both_dropped.set()

        page.on("console", on_console)
        await page.goto(admin_server.url + "/")
        await register(page, "alice")
        await acli(
            admin_server,
            tmp_path / "operator",
            "notice",
            "Wartung heute um 22 Uhr",
            "--level",
            "warning",
        )
        banner = page.get_by_test_id("banner")
        await expect(banner).to_contain_text("Wartung heute um 22 Uhr")
        await expect(banner).to_have_attribute("data-level", "warning")
        # The server signs it with its status key; the browser verified it.
        await expect(banner).to_have_attribute("data-signed", "true")
        await expect(banner.get_by_test_id("notice-unverified")).to_have_count(0)
        await screenshot(page, "07-notice-banner")

        # Notices the server did not send as they are: one signed with the server's own
        # key but then altered, one signed by another key, and one not signed at all.
        signer = Signer(parse_seed((admin_server.data_dir / SIGNING_KEY_FILE).read_text()))
        now = int(time.time() * 1000)
        altered = {"id": "forged-1", "text": "Maintenance tonight", "level": "info", "at_ms": now}
        altered["signature"] = signer.sign(altered)
        altered["text"] = "Log in again at evil.example"
        stranger = {"id": "forged-2", "text": "Reset your keys", "level": "outage", "at_ms": now}
        stranger["signature"] = Signer(os.urandom(32)).sign(stranger)
        unsigned = {"id": "plain-1", "text": "Nicht signiert", "level": "info", "at_ms": now}
        assert sockets
        for notice in (altered, stranger, unsigned):
            sockets[-1].send(json.dumps({"type": "notice", **notice}))
        plain = banner.filter(has_text="Nicht signiert")
        await expect(plain).to_have_attribute("data-signed", "false")
        await expect(plain.get_by_test_id("notice-unverified")).to_be_visible()
        await asyncio.wait_for(both_dropped.wait(), TIMEOUT_MS / 1000)
        await expect(banner).to_have_count(2)  # the signed one and the unsigned one
        await expect(banner.filter(has_text="evil.example")).to_have_count(0)
        await expect(banner.filter(has_text="Reset your keys")).to_have_count(0)
    finally:
        await context.close()


async def chat_menu(page: Page, action: str) -> None:
    """Pick an entry of the open chat's header menu (the "⋯" button)."""
    await page.get_by_test_id("chat-menu").click()
    await page.get_by_test_id(action).click()


async def test_the_devices_dialog_lists_a_command_line_login_and_revokes_it(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_page()
    await register(alice, "alice")
    await acli(
        server,
        tmp_path / "alice-cli",
        "login",
        "alice",
        "--device-name",
        "laptop shell",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    await alice.get_by_test_id("devices-button").click()
    items = alice.get_by_test_id("device-item")
    await expect(items).to_have_count(2)
    this = alice.locator('[data-testid="device-item"][data-current="true"]')
    await expect(this.get_by_test_id("this-device")).to_have_text("this browser")
    await expect(this.get_by_test_id("revoke-device")).to_have_count(0)
    other = items.filter(has_text="laptop shell")
    await expect(other).to_contain_text("last seen")
    await screenshot(alice, "08-devices")
    await other.get_by_test_id("revoke-device").click()
    await other.get_by_test_id("confirm-revoke").click()
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-current", "true")
    # The revoked command line is logged out for good.
    env = {**os.environ, "TAUBE_SERVER": server.url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "taube.cli", "--profile", str(tmp_path / "alice-cli"), "devices"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60 * UNIT_S,
        check=False,
    )
    assert done.returncode != 0


async def test_blocking_a_command_line_user_hides_their_messages_until_unblocked(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await register(alice, "alice")
    await acli(server, bob, "send", "@alice", "Hallo Alice")
    await alice.locator('[data-testid="chat-item"][data-conversation="@bob"]').click()
    await expect(bubble(alice, "Hallo Alice")).to_be_visible()

    await chat_menu(alice, "block-button")
    notice = alice.get_by_test_id("blocked-notice")
    await expect(notice).to_contain_text("You blocked @bob. Unblock to send.")
    await expect(alice.get_by_test_id("composer")).to_be_hidden()
    await expect(alice.get_by_test_id("system-line").last).to_have_text("You blocked @bob.")
    await screenshot(alice, "09-blocked")
    await acli(server, bob, "send", "@alice", "Bist du da?")

    await notice.get_by_test_id("unblock-button").click()
    await expect(alice.get_by_test_id("composer")).to_be_visible()
    await expect(notice).to_be_hidden()
    await chat_menu(alice, "block-button")  # the menu offers blocking again
    await expect(notice).to_be_visible()
    await notice.get_by_test_id("unblock-button").click()
    await acli(server, bob, "send", "@alice", "Wieder da")
    await expect(bubble(alice, "Wieder da")).to_be_visible()
    # Messages come in order: what bob wrote while blocked never arrives.
    await expect(alice.get_by_test_id("message-text").filter(has_text="Bist du da?")).to_have_count(
        0
    )


# The system's notifications are the outside world here: a stand-in records what the
# page shows and takes back, with the page in the background (permission granted).
NOTIFICATIONS_STAND_IN = """
window.__notifications = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) {
    Object.assign(this, { title, body: options && options.body, closed: false });
    window.__notifications.push(this);
  }
  close() { this.closed = true; }
};
Object.defineProperty(document, "hidden", { get: () => true });
"""


async def shown_notifications(page: Page) -> list[tuple[str, bool]]:
    """(body, closed) of every notification the page made."""
    got = await page.evaluate("window.__notifications.map(n => [n.body, n.closed])")
    return [(str(body), bool(closed)) for body, closed in got]


async def notifications_until(
    page: Page, check: Callable[[list[tuple[str, bool]]], bool]
) -> list[tuple[str, bool]]:
    """Poll the stand-in until ``check`` holds (the page's CSP rules out
    wait_for_function, which evaluates strings)."""
    async with asyncio.timeout(TIMEOUT_MS / 1000):
        while True:
            shown = await shown_notifications(page)
            if check(shown):
                return shown
            await asyncio.sleep(0.1)


async def test_a_notification_is_taken_back_when_its_message_is_deleted_or_disappears(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    """A message's text must not outlive it in the system's notification list."""
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await alice.add_init_script(NOTIFICATIONS_STAND_IN)
    await alice.reload()
    await register(alice, "alice")
    await acli(server, bob, "send", "@alice", "bleibt")
    await acli(server, bob, "send", "@alice", "wird zurückgenommen")
    shown = await notifications_until(alice, lambda n: len(n) == 2)
    assert shown == [("bleibt", False), ("wird zurückgenommen", False)]
    got = await acli(server, bob, "history", "@alice", "--json", "--offline")
    [taken_back] = [
        item["id"] for item in map(json.loads, got.splitlines())
        if item.get("text") == "wird zurückgenommen"
    ]  # fmt: skip
    await acli(server, bob, "delete", taken_back, "--for-everyone")
    shown = await notifications_until(alice, lambda n: any(closed for _, closed in n))
    assert shown == [("bleibt", False), ("wird zurückgenommen", True)]
    await acli(server, bob, "disappearing", "@alice", "2s")
    await acli(server, bob, "send", "@alice", "gleich weg")
    shown = await notifications_until(alice, lambda n: ("gleich weg", True) in n)
    assert shown[0] == ("bleibt", False)


async def test_a_chat_timer_marks_new_messages_and_expired_ones_disappear(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await register(alice, "alice")
    await open_chat(alice, "bob")
    await chat_menu(alice, "disappearing-button")
    options = alice.get_by_test_id("disappearing-option")
    await expect(options).to_have_count(4)
    await expect(
        alice.locator('[data-testid="disappearing-option"][data-seconds="0"]')
    ).to_have_attribute("aria-checked", "true")
    await screenshot(alice, "10-disappearing-dialog")
    await alice.locator('[data-testid="disappearing-option"][data-seconds="86400"]').click()
    await expect(alice.get_by_test_id("system-line").last).to_have_text(
        "You turned on disappearing messages: 1 day"
    )
    await expect(alice.get_by_test_id("disappearing-badge")).to_have_attribute(
        "data-seconds", "86400"
    )
    await write(alice, "Geheim")
    secret = bubble(alice, "Geheim")
    await expect(secret.get_by_test_id("expiry-mark")).to_be_visible()
    await expect(secret).to_have_attribute("data-status", STORED)
    await screenshot(alice, "11-disappearing-chat")

    # Bob's command line got the timer and a message that carries it.
    await acli(server, bob, "listen", "--json", "--count", "2", "--timeout", "20")
    got = await acli(server, bob, "history", "@alice", "--json", "--offline")
    items = [json.loads(line) for line in got.splitlines()]
    [geheim] = [i for i in items if i["text"] == "Geheim"]
    assert geheim["expires_at_ms"] - geheim["sent_at_ms"] == 86_400_000
    # The browser counts from its own clock at sending (the server stamps a moment later).
    expires = int(await secret.get_attribute("data-expires-at") or 0)
    assert abs(expires - geheim["expires_at_ms"]) < 10_000

    # A short timer from bob: his next message goes from the view and the device.
    await acli(server, bob, "disappearing", "@alice", "3s")
    await expect(alice.get_by_test_id("system-line").last).to_have_text(
        "@bob turned on disappearing messages: 3 seconds"
    )
    await expect(alice.get_by_test_id("disappearing-badge")).to_have_attribute("data-seconds", "3")
    await acli(server, bob, "send", "@alice", "Gleich weg")
    await expect(bubble(alice, "Gleich weg")).to_be_visible()
    await expect(bubble(alice, "Gleich weg")).to_have_count(0, timeout=int(15_000 * UNIT_S))
    await alice.reload()
    await alice.locator('[data-testid="chat-item"][data-conversation="@bob"]').click()
    await expect(bubble(alice, "Geheim")).to_be_visible()
    await expect(alice.get_by_test_id("message-text").filter(has_text="Gleich weg")).to_have_count(
        0
    )


async def test_the_connection_banner_names_the_incident_from_the_status_page(
    new_page: PageFactory, server: ServerProcess, tmp_path: Path
) -> None:
    bob = tmp_path / "bob-cli"
    await acli(server, bob, "register", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    alice = await new_page()
    await register(alice, "alice")
    await open_chat(alice, "bob")
    now_ms = int(time.time() * 1000)
    started = now_ms - now_ms % 60_000 - 10 * 60_000
    since = datetime.datetime.fromtimestamp(started / 1000, datetime.UTC).strftime("%H:%M")
    document = {
        "version": 1,
        "generated_ms": now_ms,
        "verdict": "partial_outage",
        "incidents": {
            "open": [
                {
                    "id": 7,
                    "title": "Messages are delayed",
                    "started_ms": started,
                    "updates": [{"at_ms": started, "text": "We are looking into it."}],
                }
            ],
            "recent": [],
        },
    }
    await alice.route(
        "**/status.json",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(document)
        ),
    )
    await asyncio.to_thread(server.stop)
    banner = alice.get_by_test_id("connection-banner")
    await expect(banner).to_contain_text("Can't reach the server. Reconnecting…")
    await expect(banner).to_contain_text(
        f"It's not you: Messages are delayed (incident #7, since {since} UTC)",
        timeout=int(30_000 * UNIT_S),
    )
    await expect(banner).to_have_attribute("data-incident", "7")
    await write(alice, "trotzdem")
    queued = bubble(alice, "trotzdem")
    await expect(queued).to_have_attribute("data-status", "pending")
    await expect(queued).to_have_attribute("data-queued-during", "7")
    await expect(queued).to_have_attribute("title", "queued during incident #7")
    await screenshot(alice, "12-incident-banner")
    await asyncio.to_thread(server.start)
    await expect(queued).to_have_attribute("data-status", STORED, timeout=int(30_000 * UNIT_S))
    await expect(queued).not_to_have_attribute("data-queued-during", "7")
    await expect(banner).to_have_count(0)


def _tiny_png() -> bytes:
    """A valid 1x1 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
