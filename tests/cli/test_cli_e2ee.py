"""``taube safety-number`` and ``taube verify``, and what a key change does to ``send``."""

from __future__ import annotations

import json

from tests.cli.conftest import PASSWORD, Taube


def test_both_sides_see_the_same_safety_number_and_a_qr_code(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    mine = taube("alice", "safety-number", "@bob", "--json")
    theirs = taube("bob", "safety-number", "@alice", "--json")
    assert mine.returncode == 0, mine.stderr
    assert theirs.returncode == 0, theirs.stderr
    a, b = json.loads(mine.stdout), json.loads(theirs.stdout)
    assert a["safety_number"] == b["safety_number"]
    assert len(a["safety_number"]) == 60
    assert a["safety_number"].isdigit()
    assert a["verified"] is False
    shown = taube("alice", "safety-number", "@bob")
    groups = a["safety_number"][:5] + " " + a["safety_number"][5:10]
    assert groups in shown.stdout
    assert "█" in shown.stdout  # the QR code
    assert "taube verify @bob" in shown.stdout


def test_verify_then_a_new_device_of_bob_blocks_send_until_verified_again(
    alice_and_bob: Taube,
) -> None:
    taube = alice_and_bob
    assert taube("alice", "send", "@bob", "hallo").returncode == 0
    verified = taube("alice", "verify", "@bob")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(taube("alice", "safety-number", "@bob", "--json").stdout)["verified"]
    # Bob logs in on a second device: new keys, a new safety number.
    login = taube("bob-phone", "login", "bob", "--password-stdin", input=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    after = json.loads(taube("alice", "safety-number", "@bob", "--json").stdout)
    assert after["verified"] is False
    refused = taube("alice", "send", "@bob", "noch da?")
    assert refused.returncode != 0
    assert "e2ee.identity_changed" in refused.stderr
    assert "taube safety-number @bob" in refused.stderr
    assert taube("alice", "verify", "@bob").returncode == 0
    assert taube("alice", "send", "@bob", "noch da?").returncode == 0
    for device, expected in (("bob", ["hallo", "noch da?"]), ("bob-phone", ["noch da?"])):
        got = taube(device, "listen", "--json", "--count", str(len(expected)), "--timeout", "10")
        assert got.returncode == 0, (device, got.stderr)
        lines = [json.loads(line) for line in got.stdout.splitlines()]
        assert [m["text"] for m in lines] == expected
        assert all(m["encrypted"] for m in lines)


def test_safety_number_of_an_unknown_user_is_a_one_line_error(alice_and_bob: Taube) -> None:
    done = alice_and_bob("alice", "safety-number", "@nobody")
    assert done.returncode != 0
    assert done.stderr.startswith("error: user.not_found")
