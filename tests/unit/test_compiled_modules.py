"""The modules compiled with mypyc (the Makefile's HOT_MODULES) hold no ``await`` inside
a ``finally`` or ``except`` block.

Why: compiled by mypyc 2.4, such a coroutine re-raises an exception that was already
handled, and the stale exception can surface in another coroutine that runs later (mypyc
issue 1114; the related issue 1177 is fixed in the mypyc 2.4.1 runtime, whose build
passes its reproduction). Found in the gateway, compiled in the sessions before: during a
PostgreSQL outage under load, connections that had ended ended their tasks with other
connections' exceptions ("Task exception was never retrieved"), and one exception's
traceback grew by every task it passed through (~30 MB of log per node in two
minutes). The smallest reproduction, which returns "ok" interpreted and raises compiled::

    async def inner() -> None:
        try:
            raise ValueError("from inner")
        finally:
            await asyncio.sleep(0)

    async def outer() -> str:
        try:
            await inner()
        except ValueError:
            pass
        finally:
            await asyncio.sleep(0)
        return "ok"

An ``async with`` outside such blocks is fine: mypyc awaits ``__aexit__`` in blocks of
its own, but ``asyncio.timeout``'s does not suspend, and a compiled coroutine whose
``asyncio.timeout`` expires leaves no stale exception (checked by hand with mypyc 2.4.1).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _hot_modules() -> list[Path]:
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"^HOT_MODULES\s*:=((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert block is not None, "the Makefile lists the compiled modules in HOT_MODULES"
    names = block.group(1).replace("\\", " ").split()
    return [ROOT / "src" / name for name in names]


def _awaits(statements: list[ast.stmt]) -> bool:
    return any(
        isinstance(node, ast.Await | ast.AsyncWith | ast.AsyncFor)
        for statement in statements
        for node in ast.walk(statement)
    )


def test_the_compiled_modules_are_listed_and_exist() -> None:
    modules = _hot_modules()
    assert len(modules) >= 10
    assert all(path.is_file() for path in modules), [p for p in modules if not p.is_file()]


def test_no_compiled_module_awaits_in_a_finally_or_except_block() -> None:
    found = []
    for path in _hot_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try | ast.TryStar):
                continue
            if _awaits(node.finalbody):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} await in finally")
            for handler in node.handlers:
                if _awaits(handler.body):
                    found.append(f"{path.relative_to(ROOT)}:{handler.lineno} await in except")
    assert not found, found
