"""``python -m taube.bench.crypto_cost`` runs and reports every figure (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from taube.bench.crypto_cost import main


def test_it_prints_every_figure_and_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--messages", "20", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(figures) == {
        "ratchet_same_chain_us",
        "ratchet_with_dh_step_us",
        "sender_key_us",
        "session_decode_us",
        "ciphertext_bytes_for_100_byte_text",
    }
    assert all(value > 0 for value in figures.values())
    # A 100-byte text: content JSON, CBC padding, header and MAC on top.
    assert figures["ciphertext_bytes_for_100_byte_text"] > 130
