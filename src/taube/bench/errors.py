"""Why a benchmark could not run, as a stable code and a message for the command line."""

from __future__ import annotations


class BenchError(Exception):
    """The run cannot go on (server refused, connections failed, a worker died)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
