"""The SDK's side of status: checking signed documents, the dead man's switch, the
outbox marks, and (against a real server) the ``ServiceStatus`` event of a client that
cannot connect, with the status URL served by a tiny static web server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from taube.client import (
    Client,
    OutboxEntry,
    Profile,
    ServiceStatus,
    StatusForged,
    StatusUnavailable,
    fetch_status,
)
from taube.client.status import headline, judge, status_document_url
from taube.status.signing import Signer

SEED = bytes(range(32))
SIGNER = Signer(SEED)
KEY = SIGNER.public_key_b64
OTHER = Signer(bytes(32))


def document(verdict: str = "operational", age_s: float = 0.0, **extra: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    doc: dict[str, Any] = {
        "version": 1,
        "generated_ms": now - int(age_s * 1000),
        "node": "n1",
        "verdict": verdict,
        "components": [
            {
                "id": "send",
                "name": "Send & deliver",
                "status": verdict,
                "uptime_90d": 0.9991,
                "days": [{"date": "2025-05-03", "status": verdict, "uptime": 0.99}],
            },
        ],
        "latency": {"p50_ms": 40, "p99_ms": 180, "window_s": 300},
        "slos": [],
        "incidents": {"open": [], "recent": []},
        "maintenance": [],
        "public_key": KEY,
        **extra,
    }
    return SIGNER.signed(doc)


def incident(number: int = 12, title: str = "delivery delayed") -> dict[str, Any]:
    started = int(time.time() * 1000) - 60_000
    return {
        "id": number, "title": title, "status": "investigating", "impact": "major",
        "components": ["send"], "started_ms": started, "resolved_ms": None, "automatic": True,
        "updates": [{"at_ms": started, "status": "investigating", "text": "canaries fail",
                     "by": "automatic"}],
        "postmortem": None,
    }  # fmt: skip


# ---------------------------------------------------------------- pure: judging documents


def test_a_fresh_signed_document_is_verified_and_shown_as_it_is() -> None:
    view = judge(document("degraded"), KEY, source="test")
    assert (view.verified, view.fresh, view.verdict) == (True, True, "degraded")
    assert view.document.components[0].uptime_90d == pytest.approx(0.9991)


def test_forged_unsigned_and_foreign_documents_are_refused() -> None:
    tampered = document("major_outage")
    tampered["verdict"] = "operational"
    with pytest.raises(StatusForged, match="not signed by this server"):
        judge(tampered, KEY, source="test")
    unsigned = document()
    del unsigned["signature"]
    with pytest.raises(StatusForged, match="not signed"):
        judge(unsigned, KEY, source="test")
    foreign = OTHER.signed({**document(), "public_key": OTHER.public_key_b64})
    with pytest.raises(StatusForged):
        judge(foreign, KEY, source="test")


def test_without_a_known_key_a_self_consistent_document_is_shown_unverified() -> None:
    view = judge(document(), None, source="test")
    assert not view.verified
    assert "knows no status key" in headline(view)
    tampered = {**document(), "node": "evil"}
    with pytest.raises(StatusForged):
        judge(tampered, None, source="test")


def test_a_stale_document_is_never_healthy_but_a_stale_outage_stays_an_outage() -> None:
    stale = judge(document("operational", age_s=300), KEY, source="test")
    assert (stale.fresh, stale.verdict) == (False, "unknown")
    assert headline(stale).startswith("status unknown — last confirmed healthy at ")
    outage = judge(document("major_outage", age_s=300), KEY, source="test")
    assert (outage.fresh, outage.verdict) == (False, "major_outage")
    tolerant = judge(document("operational", age_s=300), KEY, source="test", max_age_s=600)
    assert tolerant.verdict == "operational"


def test_the_headline_names_the_open_incident() -> None:
    doc = document("partial_outage", incidents={"open": [incident()], "recent": []})
    text = headline(judge(doc, KEY, source="test"))
    assert text.startswith("It's not you: incident #12 since ")
    assert text.endswith(" UTC, delivery delayed")


def test_status_urls_name_a_folder_or_the_document() -> None:
    assert status_document_url("https://status.example/") == "https://status.example/status.json"
    assert (
        status_document_url("https://x.example/s/status.json") == "https://x.example/s/status.json"
    )


# ---------------------------------------------------------------- pure: the profile


def test_messages_queued_while_an_incident_is_known_are_marked_until_they_leave(
    tmp_path: Path,
) -> None:
    with Profile.open(tmp_path) as profile:
        profile.save_session(("http://x",), "alice", 1, "t")
        profile.outbox_add([OutboxEntry("a", "@bob", b"1", 1)])
        assert profile.set_incident("#12") == 1  # already waiting: marked now
        profile.outbox_add([OutboxEntry("b", "@bob", b"2", 2)])  # written during it
        profile.set_incident(None)
        profile.outbox_add([OutboxEntry("c", "@bob", b"3", 3)])
        marks = {e.id: e.incident for e in profile.outbox()}
        assert marks == {"a": "#12", "b": "#12", "c": None}
        profile.outbox_remove(["a"])
        profile.save_status_key(KEY)
        profile.save_status_url("https://status.example")
    with Profile.open(tmp_path) as profile:
        state = profile.status_state()
        assert (state.public_key, state.status_url, state.incident) == (
            KEY, "https://status.example", None,
        )  # fmt: skip
        assert [e.incident for e in profile.outbox()] == ["#12", None]


# ---------------------------------------------------------------- fetching, with a static host


@pytest.fixture
async def static_host(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], str]]:
    """``url = static_host(doc)``: a folder with status.json served over HTTP (aiohttp
    static files, as any static host would)."""
    runners: list[web.AppRunner] = []
    sites: list[str] = []

    folder = tmp_path / "public"
    folder.mkdir()
    app = web.Application()
    app.router.add_static("/", folder)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runners.append(runner)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sites.append(f"http://127.0.0.1:{port}")

    def put(doc: dict[str, Any]) -> str:
        (folder / "status.json").write_text(json.dumps(doc), encoding="utf-8")
        return sites[0]

    yield put
    for r in runners:
        await r.cleanup()


async def test_fetch_falls_back_to_the_status_url_and_refuses_forgeries(
    static_host: Callable[[dict[str, Any]], str],
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    url = static_host(document("major_outage", incidents={"open": [incident()], "recent": []}))
    async with aiohttp.ClientSession() as http:
        view = await fetch_status(http, [dead], url, KEY)
        assert (view.verified, view.verdict, view.source) == (
            True,
            "major_outage",
            url + "/status.json",
        )
        forged = document()
        forged["verdict"] = "major_outage"
        static_host(forged)
        with pytest.raises(StatusForged):
            await fetch_status(http, [dead], url, KEY)
        with pytest.raises(StatusUnavailable):
            await fetch_status(http, [dead], None, KEY)


# ---------------------------------------------------------------- the client, cut off


async def test_a_client_that_cannot_connect_emits_the_status_from_the_status_url(
    tmp_path: Path, static_host: Callable[[dict[str, Any]], str]
) -> None:
    from tests.client.conftest import FAST
    from tests.serverproc import UNIT_S, free_port

    url = static_host(document("major_outage", incidents={"open": [incident()], "recent": []}))
    with Profile.open(tmp_path / "alice") as profile:
        profile.save_session((f"http://127.0.0.1:{free_port()}",), "alice", 1, "t")
        profile.save_status_key(KEY)
        profile.save_status_url(url)
    async with Client(tmp_path / "alice", options=FAST) as client:
        status = await client.wait_service_status(timeout=15 * UNIT_S)
        assert isinstance(status, ServiceStatus)
        assert (status.verdict, status.verified, status.fresh) == ("major_outage", True, True)
        assert status.text.startswith("It's not you: incident #12 since ")
        assert [i.ref for i in status.incidents] == ["#12"]
        assert client.service_status == status
        await client.send("@bob", "hello")
        assert not client.connected
    with Profile.open(tmp_path / "alice") as profile:
        (entry,) = profile.outbox()
        assert entry.incident == "#12"
        assert profile.status_state().incident == "#12"


@pytest.fixture
async def sick_node() -> AsyncIterator[tuple[str, list[dict[str, Any]], asyncio.Event]]:
    """A node whose WebSocket refuses everyone (503) while its HTTP side still answers:
    the status document, the status key, and user reports (recorded)."""
    reports: list[dict[str, Any]] = []
    reported = asyncio.Event()

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async def status_json(request: web.Request) -> web.Response:
        return web.json_response(document("operational"))

    async def key(request: web.Request) -> web.Response:
        return web.json_response({"public_key": KEY})

    async def report(request: web.Request) -> web.Response:
        reports.append({**await request.json(), "auth": "Authorization" in request.headers})
        reported.set()
        return web.json_response({}, status=202)

    app = web.Application()
    app.router.add_get("/v1/ws", refuse)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/v1/status/key", key)
    app.router.add_post("/v1/reports", report)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", reports, reported
    finally:
        await runner.cleanup()


async def test_after_repeated_failures_the_client_reports_once_per_interval(
    tmp_path: Path, sick_node: tuple[str, list[dict[str, Any]], asyncio.Event]
) -> None:
    from tests.client.conftest import FAST
    from tests.serverproc import UNIT_S

    url, reports, reported = sick_node
    with Profile.open(tmp_path / "alice") as profile:
        profile.save_session((url,), "alice", 1, "t")
        profile.save_status_key(KEY)
    for _ in range(2):  # a second run within ten minutes does not report again
        async with Client(tmp_path / "alice", options=FAST) as client:
            status = await client.wait_service_status(timeout=15 * UNIT_S)
            assert (status.verdict, status.verified, status.fresh) == ("operational", True, True)
            assert "trouble may be on this side" in status.text
            await asyncio.wait_for(reported.wait(), timeout=5 * UNIT_S)
    assert len(reports) == 1
    assert reports[0]["kind"] == "connect"
    assert reports[0]["auth"] is True
    with Profile.open(tmp_path / "alice") as profile:
        assert profile.status_state().last_report_ms > 0


async def test_a_notice_with_a_bad_signature_is_dropped_never_shown(tmp_path: Path) -> None:
    from taube.client import Notice
    from taube.protocol import frames as fr
    from tests.client.conftest import FAST
    from tests.serverproc import UNIT_S

    now = int(time.time() * 1000)
    good = fr.Notice(
        id="n1",
        text="Wartung um 22 Uhr",
        level="warning",
        at_ms=now,
        signature=SIGNER.sign_notice("n1", "Wartung um 22 Uhr", "warning", now),
    )
    forged = fr.Notice(
        id="n2",
        text="Log in at evil.example",
        level="outage",
        at_ms=now,
        signature=OTHER.sign_notice("n2", "Log in at evil.example", "outage", now),
    )
    unsigned = fr.Notice(id="n3", text="plain", level="info", at_ms=now)  # fmt: skip

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.receive()  # auth
        ready = fr.Ready(handle="alice", device=1, last_seq=0, server_time_ms=now,
                         max_payload_bytes=65536)  # fmt: skip
        for frame in (ready, good, forged, unsigned):
            await socket.send_str(fr.encode_frame(frame).decode())
        async for _ in socket:
            pass
        return socket

    async def key(request: web.Request) -> web.Response:
        return web.json_response({"public_key": KEY})

    app = web.Application()
    app.router.add_get("/v1/ws", ws)
    app.router.add_get("/v1/status/key", key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with Profile.open(tmp_path / "alice") as profile:
            profile.save_session((f"http://127.0.0.1:{port}",), "alice", 1, "t")
            profile.save_status_key(KEY)
        shown: list[Notice] = []
        async with Client(tmp_path / "alice", options=FAST) as client:
            async with asyncio.timeout(10 * UNIT_S):
                async for event in client.events():
                    if isinstance(event, Notice):
                        shown.append(event)
                        if event.id == "n3":
                            break
        assert [(n.id, n.signed) for n in shown] == [("n1", True), ("n3", False)]
    finally:
        await runner.cleanup()


async def test_cut_off_from_a_real_server_the_client_reads_the_export_and_delivers_later(
    tmp_path: Path, static_host: Callable[[dict[str, Any]], str]
) -> None:
    from taube.cli.status import export_once
    from taube.client import Api, Message, register
    from tests.client.conftest import FAST, PASSWORD, collect
    from tests.serverproc import UNIT_S, ServerProcess

    admin = "sdk-status-admin-token"
    server = ServerProcess(tmp_path / "srv", settings={"admin": {"token": admin}}).start()
    try:
        for user in ("alice", "bob"):
            await register(user, PASSWORD, servers=server.url, profile=tmp_path / user)
        async with Api(server.url) as operator:
            opened = await operator.open_incident(
                admin, "delivery delayed", "major", ["send"], "Messages arrive late."
            )
        url = static_host(document())  # the folder's address; export_once fills it
        folder = tmp_path / "public"
        async with aiohttp.ClientSession() as http:
            await export_once(http, (server.url,), None, folder)
        server.stop()

        async with Client(tmp_path / "alice", options=FAST, status_url=url) as alice:
            status = await alice.wait_service_status(timeout=15 * UNIT_S)
            assert status.verified
            assert [i.id for i in status.incidents] == [opened.id]
            assert status.text.startswith(f"It's not you: incident #{opened.id} since ")
            message_id = await alice.send("@bob", "still there?")
            with Profile.open(tmp_path / "alice") as profile:
                assert [e.incident for e in profile.outbox()] == [f"#{opened.id}"]

            server.start()
            await alice.wait_sent([message_id], timeout=20 * UNIT_S)
            assert alice.service_status is None
        async with Client(tmp_path / "bob", options=FAST) as bob:
            (got,) = await collect(bob, 1, 10)
            assert isinstance(got, Message)
            assert got.text == "still there?"
        with Profile.open(tmp_path / "alice") as profile:
            assert profile.outbox() == []
            assert profile.status_state().incident is None
    finally:
        server.stop()
