"""Status and incidents over a real single-node server: canaries measure, the signed
document and the page tell, incidents open (by hand and from user reports), notices
reach connected clients, webhooks are signed, retried and logged."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import msgspec
import pytest
from aiohttp import web

from taube.protocol.frames import Notice
from taube.status.signing import WEBHOOK_HEADER, verify_document, verify_notice, verify_webhook
from tests.serverproc import UNIT_S, ServerProcess, free_port
from tests.wire import connect, http, register

ADMIN = "status-admin-token"
FAST: dict[str, dict[str, object]] = {
    "admin": {"token": ADMIN},
    "status": {
        "canary_interval_s": 0.5,
        "probe_timeout_s": 3.0,
        "recover_after_s": 2.0,
        "reports_per_min": 10000.0,
        "report_min_count": 10,
        "report_spike_factor": 5.0,
        "webhook_backoff_s": 0.1,
        "webhook_max_attempts": 3,
    },
}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "status", settings=FAST, node="solo").start()
    try:
        yield proc
    finally:
        proc.stop()


async def document(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/status.json") as response:
        assert response.status == 200
        return dict(await response.json())


async def eventually(check: Any, timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout * UNIT_S
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout * UNIT_S:.0f} s: {what}")
        await asyncio.sleep(0.2)


async def admin(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    return await http(session, method, url, body, ADMIN)


# ---------------------------------------------------------------- measured and signed


async def test_canaries_measure_and_the_signed_document_says_operational(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    async def measured() -> dict[str, Any] | None:
        doc = await document(session, node.url)
        ok = doc["verdict"] == "operational" and doc["latency"]["p50_ms"] is not None
        return doc if ok else None

    doc = await eventually(measured, what="canaries report operational with a latency")
    assert doc["version"] == 1
    assert doc["node"] == "solo"
    ids = [c["id"] for c in doc["components"]]
    assert ids[:6] == ["connect", "send", "api", "web", "store", "bus"]
    assert "node:solo" in ids
    by_id = {c["id"]: c for c in doc["components"]}
    for cid in ("connect", "send", "api", "store", "bus", "node:solo"):
        assert by_id[cid]["status"] == "operational", cid
    for component in doc["components"]:
        assert len(component["days"]) == 90
        # Nothing was measured before today: unknown, never operational.
        assert {d["status"] for d in component["days"][:-1]} == {"unknown"}
        assert component["days"][0]["uptime"] is None
    assert doc["latency"]["p99_ms"] >= doc["latency"]["p50_ms"] > 0
    (slo,) = doc["slos"]
    assert slo["component"] == "send"
    assert slo["target"] == 0.9995
    assert slo["achieved"] == 1.0
    assert doc["incidents"] == {"open": [], "recent": []}

    status, key = await http(session, "GET", f"{node.url}/v1/status/key")
    assert status == 200
    assert key["public_key"] == doc["public_key"]
    assert verify_document(doc, key["public_key"])
    assert not verify_document({**doc, "verdict": "major_outage"}, key["public_key"])
    # The generated key lives in the data folder, readable by the owner only.
    assert (node.data_dir / "status-signing.key").stat().st_mode & 0o777 == 0o600


async def test_users_cannot_register_canary_handles(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    status, problem = await http(
        session, "POST", f"{node.url}/v1/accounts",
        {"handle": "_canary_x", "password": "correct horse battery"},
    )  # fmt: skip
    assert (status, problem["code"]) == (422, "account.invalid_handle")


async def test_the_page_works_without_scripts(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{node.url}/status") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        html = await response.text()
    assert "<script" not in html.lower()
    assert "style=" not in html.lower()  # no inline styles under the CSP
    assert 'name="viewport"' in html
    assert "Taube status" in html
    assert "Send &amp; deliver" in html
    assert html.count('class="bar ') == 90 * html.count('class="component"')
    async with session.get(f"{node.url}/status/status.css") as response:
        assert response.status == 200
        assert response.content_type == "text/css"
        assert ".bar.major_outage" in await response.text()


# ---------------------------------------------------------------- incidents


async def test_incident_lifecycle_with_notices_postmortem_and_feed(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, node.url, "alice")
    wire = await connect(session, node.ws_url, alice.token)
    _, key = await http(session, "GET", f"{node.url}/v1/status/key")

    status, opened = await admin(
        session, "POST", f"{node.url}/v1/admin/incidents",
        {"title": "Delivery delayed", "impact": "major", "components": ["send"],
         "text": "Messages take minutes to arrive."},
    )  # fmt: skip
    assert status == 201, opened
    assert opened["status"] == "investigating"
    assert opened["automatic"] is False
    assert opened["updates"][0]["text"] == "Messages take minutes to arrive."

    notice: Notice = await wire.until(Notice, timeout=10)
    assert notice.level == "outage"
    assert f"Incident #{opened['id']}" in notice.text
    fields = msgspec.to_builtins(notice)
    assert verify_notice(fields, key["public_key"])
    assert not verify_notice({**fields, "text": "Log in at evil.example"}, key["public_key"])

    status, updated = await admin(
        session, "POST", f"{node.url}/v1/admin/incidents/{opened['id']}/updates",
        {"status": "identified", "text": "A disk filled up."},
    )  # fmt: skip
    assert status == 200
    assert updated["status"] == "identified"
    doc = await document(session, node.url)
    assert [i["id"] for i in doc["incidents"]["open"]] == [opened["id"]]

    status, resolved = await admin(
        session, "POST", f"{node.url}/v1/admin/incidents/{opened['id']}/resolve",
        {"text": "Disk cleaned; messages flow."},
    )  # fmt: skip
    assert status == 200
    assert resolved["status"] == "resolved"
    assert resolved["resolved_ms"] is not None
    template = resolved["postmortem_template"]
    for heading in ("## Impact", "## Timeline", "## Cause", "## Fixes"):
        assert heading in template
    later: Notice = await wire.until(Notice, timeout=10)
    while not later.text.startswith("Resolved:"):
        later = await wire.until(Notice, timeout=10)
    assert later.level == "info"

    status, problem = await admin(
        session, "POST", f"{node.url}/v1/admin/incidents/{opened['id']}/updates",
        {"status": "monitoring", "text": "again?"},
    )  # fmt: skip
    assert (status, problem["code"]) == (409, "incident.resolved")
    status, problem = await admin(
        session, "POST", f"{node.url}/v1/admin/incidents/999/resolve", {"text": ""}
    )
    assert (status, problem["code"]) == (404, "incident.not_found")

    status, with_pm = await admin(
        session, "PUT", f"{node.url}/v1/admin/incidents/{opened['id']}/postmortem",
        {"text": "## Cause\nThe log volume was never rotated."},
    )  # fmt: skip
    assert status == 200
    assert with_pm["postmortem"].startswith("## Cause")

    doc = await document(session, node.url)
    assert doc["incidents"]["open"] == []
    (past,) = doc["incidents"]["recent"]
    assert past["postmortem"].startswith("## Cause")
    assert [u["status"] for u in past["updates"]] == ["investigating", "identified", "resolved"]
    assert verify_document(doc, key["public_key"])
    async with session.get(f"{node.url}/status") as response:
        html = await response.text()
    assert "Delivery delayed" in html
    assert "The log volume was never rotated." in html

    async with session.get(f"{node.url}/status/feed.atom") as response:
        assert response.status == 200
        assert response.content_type == "application/atom+xml"
        feed = ElementTree.fromstring(await response.read())
    atom = "{http://www.w3.org/2005/Atom}"
    entries = feed.findall(f"{atom}entry")
    assert len(entries) == 3  # one per update
    titles = [e.findtext(f"{atom}title") or "" for e in entries]
    assert titles[0].endswith("resolved")
    assert titles[-1].endswith("investigating")
    await wire.close()


async def test_admin_routes_want_the_admin_token(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    for method, path in (
        ("POST", "/v1/admin/incidents"),
        ("POST", "/v1/admin/maintenance"),
        ("POST", "/v1/admin/webhooks"),
        ("GET", "/v1/admin/webhooks"),
        ("GET", "/v1/admin/webhooks/deliveries"),
    ):
        status, problem = await http(session, method, f"{node.url}{path}", {}, "wrong")
        assert (status, problem["code"]) == (401, "admin.invalid_token"), path


async def test_maintenance_is_scheduled_and_shown(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    start = int(time.time() * 1000) + 3_600_000
    status, body = await admin(
        session, "POST", f"{node.url}/v1/admin/maintenance",
        {"title": "Database upgrade", "starts_ms": start, "ends_ms": start + 1_800_000,
         "components": ["store"], "text": "Sends may pause for a minute."},
    )  # fmt: skip
    assert status == 201
    assert body["id"] >= 1
    status, problem = await admin(
        session, "POST", f"{node.url}/v1/admin/maintenance",
        {"title": "Backwards", "starts_ms": start, "ends_ms": start - 1},
    )  # fmt: skip
    assert (status, problem["code"]) == (422, "request.invalid")
    doc = await document(session, node.url)
    assert [m["title"] for m in doc["maintenance"]] == ["Database upgrade"]
    async with session.get(f"{node.url}/status") as response:
        assert "Database upgrade" in await response.text()


# ---------------------------------------------------------------- webhooks


class Receiver:
    """A local webhook subscriber: verifies signatures; fails the first ``fail`` posts."""

    def __init__(self, secret: str, fail: int = 0) -> None:
        self.secret = secret
        self.fail = fail
        self.got: list[dict[str, Any]] = []
        self.verified: list[bool] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.verified.append(
            verify_webhook(
                self.secret, body, request.headers.get(WEBHOOK_HEADER, ""),
                now_ms=int(time.time() * 1000),
            )
        )  # fmt: skip
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        self.got.append(msgspec.json.decode(body))
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_webhooks_are_signed_retried_and_logged(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    good = await Receiver("good-secret-0123456789").start()
    flaky = await Receiver("flaky-secret-0123456789", fail=2).start()
    dead = Receiver("dead-secret-0123456789")  # never listens
    try:
        ids = []
        for receiver in (good, flaky, dead):
            status, hook = await admin(
                session, "POST", f"{node.url}/v1/admin/webhooks",
                {"url": receiver.url, "secret": receiver.secret},
            )  # fmt: skip
            assert status == 201
            assert hook["url"] == receiver.url
            ids.append(hook["id"])
        status, listed = await admin(session, "GET", f"{node.url}/v1/admin/webhooks")
        assert [h["id"] for h in listed["webhooks"]] == ids
        assert "secret" not in str(listed)

        status, opened = await admin(
            session, "POST", f"{node.url}/v1/admin/incidents",
            {"title": "Hooks", "impact": "minor", "text": "testing"},
        )  # fmt: skip
        assert status == 201

        async def all_done() -> list[dict[str, Any]] | None:
            _, log = await admin(session, "GET", f"{node.url}/v1/admin/webhooks/deliveries")
            entries = log["deliveries"]
            dead_tries = [e for e in entries if e["webhook_id"] == ids[2]]
            flaky_ok = [e for e in entries if e["webhook_id"] == ids[1] and e["delivered"]]
            return entries if len(dead_tries) == 3 and flaky_ok else None

        entries = await eventually(all_done, what="deliveries retried and logged")
        assert good.got[0]["event"] == "incident.opened"
        assert good.got[0]["incident"]["id"] == opened["id"]
        assert isinstance(good.got[0]["sent_ms"], int)
        assert all(good.verified)
        assert all(flaky.verified)
        assert [e["attempt"] for e in entries if e["webhook_id"] == ids[1]] == [1, 2, 3]
        assert [e["status_code"] for e in entries if e["webhook_id"] == ids[1]] == [500, 500, 204]
        dead_entries = [e for e in entries if e["webhook_id"] == ids[2]]
        assert all(e["status_code"] is None and e["error"] for e in dead_entries)
        assert not any(e["delivered"] for e in dead_entries)
        # Backoff: the attempts are spread out, not fired at once.
        assert dead_entries[2]["at_ms"] - dead_entries[0]["at_ms"] >= 250

        status, _ = await admin(session, "DELETE", f"{node.url}/v1/admin/webhooks/{ids[2]}")
        assert status == 204
        status, problem = await admin(session, "DELETE", f"{node.url}/v1/admin/webhooks/{ids[2]}")
        assert (status, problem["code"]) == (404, "webhook.not_found")
    finally:
        await good.stop()
        await flaky.stop()


# ---------------------------------------------------------------- user reports


async def test_a_burst_of_reports_opens_investigating_and_a_trickle_does_not(
    node: ServerProcess, session: aiohttp.ClientSession
) -> None:
    async def report(kind: str) -> int:
        async with session.post(f"{node.url}/v1/reports", json={"kind": kind}) as response:
            return response.status

    await eventually(lambda: _operational(session, node.url), what="the node measures itself first")
    assert [await report("send") for _ in range(3)] == [202] * 3
    await asyncio.sleep(2.0 * UNIT_S)  # several judging rounds
    doc = await document(session, node.url)
    assert doc["incidents"]["open"] == []

    async with session.post(f"{node.url}/v1/reports", json={"kind": "bogus"}) as response:
        assert response.status == 422
    assert [await report(k) for k in ["send"] * 20 + ["connect"] * 10] == [202] * 30

    async def investigating() -> dict[str, Any] | None:
        doc = await document(session, node.url)
        found = [i for i in doc["incidents"]["open"] if i["automatic"]]
        return found[0] if found else None

    incident = await eventually(investigating, what="reports open an incident")
    assert incident["status"] == "investigating"
    assert incident["title"] == "Users report problems"
    assert set(incident["components"]) == {"send", "connect"}
    assert re.search(r"\d+ reports in a minute", incident["updates"][0]["text"])


async def _operational(session: aiohttp.ClientSession, base: str) -> bool:
    return (await document(session, base))["verdict"] == "operational"
