"""The ``taube`` program end to end: real server, real subprocesses, real profiles."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.cli.conftest import PASSWORD, Taube
from tests.serverproc import UNIT_S, ServerProcess


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_one_error_line(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"error: {code}: "), done.stderr


def test_500_lines_from_stdin_arrive_in_order(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    lines = "".join(f"{i}\n" for i in range(1, 501))
    sent = taube("alice", "send", "@bob", "--stdin", input=lines)
    assert sent.returncode == 0, sent.stderr
    heard = taube("bob", "listen", "--json", "--count", "500", "--timeout", "20")
    messages = [m for m in json_lines(heard.stdout) if m["type"] == "message"]
    missing = sorted(set(range(1, 501)) - {int(str(m["text"])) for m in messages})
    assert heard.returncode == 0, (heard.stderr, missing, [m["seq"] for m in messages][:5])
    assert [m["text"] for m in messages] == [str(i) for i in range(1, 501)]
    assert {m["from"] for m in messages} == {"alice"}
    assert {m["conversation"] for m in messages} == {"@alice"}
    assert len({m["id"] for m in messages}) == 500
    # They were acked: listening again yields nothing new.
    again = taube("bob", "listen", "--json", "--count", "1", "--timeout", "1")
    assert again.returncode == 3
    assert [m for m in json_lines(again.stdout) if m["type"] == "message"] == []


def test_group_create_prints_the_id_and_group_messages_arrive(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    created = taube("alice", "group", "create", "friends", "@bob")
    assert created.returncode == 0, created.stderr
    group_id = created.stdout.strip()
    assert len(group_id) == 26
    assert "\n" not in group_id
    sent = taube("alice", "send", f"#{group_id}", "hello friends")
    assert sent.returncode == 0, sent.stderr
    heard = taube("bob", "listen", "--json", "--count", "1", "--timeout", "10")
    assert heard.returncode == 0, heard.stderr
    items = json_lines(heard.stdout)
    group_events = [i for i in items if i["type"] == "group"]
    assert group_events[0]["group"] == group_id
    assert group_events[0]["event"] == "created"
    [message] = [i for i in items if i["type"] == "message"]
    assert (message["conversation"], message["from"], message["text"]) == (
        f"#{group_id}",
        "alice",
        "hello friends",
    )
    members = taube("bob", "group", "members", group_id)
    assert members.returncode == 0, members.stderr
    assert "@alice  (admin)" in members.stdout
    assert "@bob" in members.stdout


def test_send_while_server_down_queues_then_outbox_flush_delivers(
    alice_and_bob: Taube, server: ServerProcess
) -> None:
    taube = alice_and_bob
    server.kill()
    down = taube("alice", "send", "@bob", "--stdin", "--timeout", "1", input="a\nb\nc\n")
    assert down.returncode == 3
    assert_one_error_line(down, "client.timeout")
    assert "3 message(s) still queued" in down.stderr
    listed = taube("alice", "outbox")
    assert listed.returncode == 0
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == ["a", "b", "c"]

    server.start()
    flushed = taube("alice", "outbox", "flush", "--timeout", "10")
    assert flushed.returncode == 0, flushed.stderr
    assert taube("alice", "outbox").stdout == ""
    heard = taube("bob", "listen", "--json", "--count", "3", "--timeout", "10")
    assert heard.returncode == 0, heard.stderr
    texts = [m["text"] for m in json_lines(heard.stdout) if m["type"] == "message"]
    assert texts == ["a", "b", "c"]


def test_queued_messages_go_first_with_the_next_send(
    alice_and_bob: Taube, server: ServerProcess
) -> None:
    taube = alice_and_bob
    server.kill()
    assert taube("alice", "send", "@bob", "first", "--timeout", "0.5").returncode == 3
    server.start()
    later = taube("alice", "send", "@bob", "second")
    assert later.returncode == 0, later.stderr
    heard = taube("bob", "listen", "--json", "--count", "2", "--timeout", "10")
    texts = [m["text"] for m in json_lines(heard.stdout) if m["type"] == "message"]
    assert texts == ["first", "second"]


def test_expected_failures_are_one_line_errors(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    missing = taube("alice", "lookup", "@nobody")
    assert missing.returncode == 1
    assert_one_error_line(missing, "user.not_found")
    assert "No user has that handle" in missing.stderr

    taken = taube("carol", "register", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert taken.returncode == 1
    assert_one_error_line(taken, "account.handle_taken")

    wrong = taube("alice2", "login", "alice", "--password-stdin", input="wrong password\n")
    assert_one_error_line(wrong, "auth.bad_credentials")

    unknown = taube("alice", "send", "@nobody", "hello?", "--timeout", "5")
    assert unknown.returncode == 1
    assert_one_error_line(unknown, "msg.unknown_recipient")

    not_address = taube("alice", "send", "bob", "hello?")
    assert not_address.returncode == 2
    assert_one_error_line(not_address, "client.usage")

    nobody = taube("nobody", "whoami")
    assert nobody.returncode == 4
    assert_one_error_line(nobody, "client.not_logged_in")


def test_whoami_devices_and_logout_by_revoking_this_device(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    who = taube("alice", "whoami")
    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith("@alice device 1 on http://127.0.0.1:")
    second = taube(
        "alice-phone", "login", "alice", "--password-stdin", "--device-name", "phone",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    devices = taube("alice", "devices")
    assert devices.returncode == 0, devices.stderr
    assert "(this device)" in devices.stdout
    assert "phone" in devices.stdout
    revoked = taube("alice-phone", "devices", "revoke", "2")
    assert revoked.returncode == 0, revoked.stderr
    assert "logged out" in revoked.stdout
    after = taube("alice-phone", "whoami")
    assert after.returncode == 4


def test_global_options_work_after_the_subcommand(alice_and_bob: Taube, tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taube.cli", "whoami", "--profile", f"{tmp_path}/alice"],
        capture_output=True,
        text=True,
        timeout=30 * UNIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("@alice ")


def test_unreachable_server_is_an_error_line_not_a_traceback(taube: Taube) -> None:
    done = taube(
        "dave", "--server", "http://127.0.0.1:9", "register", "dave", "--password-stdin",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 3
    assert_one_error_line(done, "client.unreachable")


def test_listen_read_sends_read_receipts(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    assert taube("alice", "send", "@bob", "read me").returncode == 0
    heard = taube("bob", "listen", "--json", "--read", "--count", "1", "--timeout", "10")
    assert heard.returncode == 0, heard.stderr
    [message] = [m for m in json_lines(heard.stdout) if m["type"] == "message"]
    # listen acked and closed at once: that last ack still makes the delivered receipt.
    receipts = taube("alice", "listen", "--json", "--timeout", "1")
    assert receipts.returncode == 0, receipts.stderr
    got = {(r["status"], r["by"], tuple(r["ids"])) for r in json_lines(receipts.stdout)}
    assert ("delivered", "bob", (message["id"],)) in got
    assert ("read", "bob", (message["id"],)) in got


def test_group_management(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    group_id = taube("alice", "group", "create", "team").stdout.strip()
    assert taube("alice", "group", "add", f"#{group_id}", "@bob").returncode == 0
    promoted = taube("alice", "group", "promote", group_id, "bob")
    assert "@bob  (admin)" in promoted.stdout
    renamed = taube("bob", "group", "rename", group_id, "the team")
    assert renamed.stdout.startswith(f"#{group_id}  the team")
    listed = taube("bob", "group", "list")
    assert f"#{group_id}  the team  (2 members)" in listed.stdout
    assert taube("bob", "group", "leave", group_id).returncode == 0
    gone = taube("bob", "group", "members", group_id)
    assert_one_error_line(gone, "group.not_member")
    removed = taube("alice", "group", "remove", group_id, "@nobody")
    assert removed.returncode == 1
    assert "Traceback" not in removed.stderr
