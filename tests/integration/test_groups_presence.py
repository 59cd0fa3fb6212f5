"""Group administration, typing indicators and presence over the real server."""

from __future__ import annotations

from taube.protocol.frames import GroupEvent, Presence, SetTyping, Typing, Watch
from tests.serverproc import ServerProcess
from tests.wire import Account, connect, http, quiet, register


async def call(session, server: ServerProcess, who: Account, method: str, path: str, body=None):
    return await http(session, method, f"{server.url}{path}", body, who.token)


async def test_group_admin_rules_and_events(server: ServerProcess, session) -> None:
    alice, bob, carol = [await register(session, server.url, h) for h in ("alice", "bob", "carol")]
    status, group = await call(
        session, server, alice, "POST", "/v1/groups", {"name": "Familie", "members": ["@bob"]}
    )
    assert status == 201
    assert group["members"] == [
        {"handle": "alice", "admin": True},
        {"handle": "bob", "admin": False},
    ]
    gid = group["id"]
    # Non-admins cannot add, rename or remove; non-members cannot even look.
    status, body = await call(
        session, server, bob, "POST", f"/v1/groups/{gid}/members", {"handles": ["carol"]}
    )
    assert (status, body["code"]) == (403, "group.not_admin")
    status, body = await call(session, server, bob, "PATCH", f"/v1/groups/{gid}", {"name": "Mine"})
    assert (status, body["code"]) == (403, "group.not_admin")
    status, body = await call(session, server, carol, "GET", f"/v1/groups/{gid}")
    assert (status, body["code"]) == (403, "group.not_member")
    status, body = await call(
        session, server, alice, "GET", "/v1/groups/00000000000000000000000000"
    )
    assert (status, body["code"]) == (404, "group.not_found")
    status, body = await call(
        session, server, alice, "POST", f"/v1/groups/{gid}/members", {"handles": ["ghost"]}
    )
    assert (status, body["code"]) == (404, "user.not_found")
    # Admins can.
    status, group = await call(
        session, server, alice, "POST", f"/v1/groups/{gid}/members", {"handles": ["carol"]}
    )
    assert [m["handle"] for m in group["members"]] == ["alice", "bob", "carol"]
    status, group = await call(
        session, server, alice, "PATCH", f"/v1/groups/{gid}", {"name": "Family"}
    )
    assert group["name"] == "Family"
    status, group = await call(
        session, server, alice, "POST", f"/v1/groups/{gid}/admins", {"handles": ["bob"]}
    )
    assert group["members"][1] == {"handle": "bob", "admin": True}
    status, group = await call(session, server, bob, "DELETE", f"/v1/groups/{gid}/members/carol")
    assert [m["handle"] for m in group["members"]] == ["alice", "bob"]
    # Leaving: the last admin hands over to the longest-standing member.
    status, group = await call(session, server, bob, "DELETE", f"/v1/groups/{gid}/members/bob")
    status, group = await call(session, server, alice, "DELETE", f"/v1/groups/{gid}/members/alice")
    assert status == 200
    assert group["members"] == []
    # Carol saw the group events that concern her, in order.
    c = await connect(session, server.ws_url, carol.token)
    events = [await c.until(GroupEvent) for _ in range(4)]
    assert [(e.event, e.actor, e.members) for e in events] == [
        ("added", "alice", ["carol"]),
        ("renamed", "alice", []),
        ("promoted", "alice", ["bob"]),
        ("removed", "bob", ["carol"]),
    ]
    assert {e.group for e in events} == {gid}
    status, listed = await call(session, server, carol, "GET", "/v1/groups")
    assert listed["groups"] == []


async def test_group_member_limit(tmp_path, session) -> None:
    server = ServerProcess(tmp_path / "s", settings={"limits": {"max_group_members": 3}}).start()
    try:
        people = [await register(session, server.url, f"p{i}") for i in range(4)]
        status, body = await call(
            session, server, people[0], "POST", "/v1/groups",
            {"name": "Too big", "members": [p.handle for p in people[1:]]},
        )  # fmt: skip
        assert (status, body["code"], body["details"]) == (409, "group.full", {"limit": 3})
    finally:
        server.stop()


async def test_typing_reaches_the_peer_only(server: ServerProcess, session) -> None:
    alice, bob, carol = [await register(session, server.url, h) for h in ("alice", "bob", "carol")]
    a = await connect(session, server.ws_url, alice.token)
    b = await connect(session, server.ws_url, bob.token)
    c = await connect(session, server.ws_url, carol.token)
    await a.send_frame(SetTyping(conversation="@bob"))
    typing: Typing = await b.until(Typing)
    assert (typing.conversation, typing.user, typing.active) == ("@alice", "alice", True)
    await c.send_frame(SetTyping(conversation="@bob", active=False))
    typing = await b.until(Typing)
    assert (typing.user, typing.active) == ("carol", False)


async def test_presence_online_last_seen_and_hiding(server: ServerProcess, session) -> None:
    alice, bob = [await register(session, server.url, h) for h in ("alice", "bob")]
    a = await connect(session, server.ws_url, alice.token)
    await a.send_frame(Watch(users=["bob"]))
    first: Presence = await a.until(Presence)
    assert (first.user, first.online, first.last_seen_ms) == ("bob", False, None)
    b = await connect(session, server.ws_url, bob.token)
    online: Presence = await a.until(Presence)
    assert (online.user, online.online) == ("bob", True)
    await b.close()
    offline: Presence = await a.until(Presence)
    assert not offline.online
    assert offline.last_seen_ms is not None
    # Bob hides his presence while online: watchers see him go offline at once,
    # and from then on see nothing, not even last seen.
    b = await connect(session, server.ws_url, bob.token)
    assert (await a.until(Presence)).online
    status, me = await call(session, server, bob, "PATCH", "/v1/me", {"hide_presence": True})
    assert (status, me["hide_presence"]) == (200, True)
    gone: Presence = await a.until(Presence)
    assert (gone.online, gone.last_seen_ms) == (False, None)
    await b.close()
    await a.send_frame(Watch(users=["bob"]))
    hidden: Presence = await a.until(Presence)
    assert (hidden.online, hidden.last_seen_ms) == (False, None)
    b = await connect(session, server.ws_url, bob.token)
    assert not [f for f in await quiet(a, 0.3) if isinstance(f, Presence)]
