"""The schema migrations each store ships, as numbered SQL files per dialect."""

from __future__ import annotations

from importlib import resources


def shipped(dialect: str) -> list[tuple[int, str]]:
    """(version, SQL) for every migration of ``dialect`` ("sqlite" or "postgres")
    shipped in the package, in order."""
    folder = resources.files(__name__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)
