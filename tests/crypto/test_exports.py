"""The public face of taube.crypto is a contract: __all__ lists exactly what it exports."""

from __future__ import annotations

import taube.crypto


def test_all_names_exist_and_are_sorted() -> None:
    for name in taube.crypto.__all__:
        assert hasattr(taube.crypto, name), name
    public = {n for n in dir(taube.crypto) if not n.startswith("_")}
    modules = {"attachments", "encoding", "errors", "kdf", "keys", "primitives", "ratchet",
               "safety", "sender_keys", "x3dh"}  # fmt: skip
    assert public - modules == set(taube.crypto.__all__)
