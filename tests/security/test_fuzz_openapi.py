"""Schemathesis against /openapi.json of a real server: requests generated from each
operation's schema, valid ones and deliberately invalid ones (wrong types, missing
fields, odd path and query values), sent with a real device token (or the admin token
on admin routes). What must hold for every response:

* never a 5xx other than the documented 503s (and never 500 ``internal``);
* every error (4xx/5xx) with a body is ``application/problem+json`` whose ``code``
  is in the error table and whose ``status`` is that code's HTTP status.

``FUZZ_CASES`` is the total number of requests, spread evenly over the operations
(default 200; ``make fuzz`` runs 10,000). The fuzzing device may revoke itself
(``DELETE /v1/devices/1`` is a valid request): then it logs in again.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from taube.protocol.errors import ERRORS
from tests.serverproc import ServerProcess

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "200"))
ADMIN = "schemathesis-admin-token"
PASSWORD = "correct horse battery"
HANDLE = "schemafuzz0"
# Blob chunks are raw bytes: send what the schema generated ("format: binary") as is.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

ALLOWED_5XX = {"server.overloaded", "server.draining", "server.unavailable", "server.not_ready"}


@dataclass
class Tally:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


class Principal:
    """The fuzzing device's token, renewed by a login whenever a case revoked it."""

    def __init__(self, base: str, http: requests.Session) -> None:
        self.base = base
        self.http = http
        self.lock = threading.Lock()
        answer = http.post(f"{base}/v1/accounts", json={"handle": HANDLE, "password": PASSWORD})
        answer.raise_for_status()
        self.token = str(answer.json()["token"])

    def renew(self) -> None:
        answer = self.http.post(f"{self.base}/v1/sessions",
                                json={"handle": HANDLE, "password": PASSWORD})  # fmt: skip
        answer.raise_for_status()
        self.token = str(answer.json()["token"])


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("fuzz-openapi")
    proc = ServerProcess(folder, settings={"admin": {"token": ADMIN}}).start()
    try:
        yield proc
    finally:
        proc.stop()


def check(response: Any, method: str, path: str, tally: Tally) -> None:
    tally.requests += 1
    status = int(response.status_code)
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    if status < 400:
        return
    where = f"{method.upper()} {path} -> {status}"
    if method.upper() == "HEAD" or not response.content:
        if method.upper() != "HEAD":
            tally.failures.append(f"{where}: error without a body")
        return
    media = response.headers.get("Content-Type", response.headers.get("content-type", ""))
    media = media[0] if isinstance(media, list) else media
    if not str(media).startswith("application/problem+json"):
        tally.failures.append(f"{where}: {media} instead of problem+json")
        return
    problem = response.json()
    code = problem.get("code")
    tally.codes[code] = tally.codes.get(code, 0) + 1
    if code not in ERRORS:
        tally.failures.append(f"{where}: undocumented code {code!r}")
    elif ERRORS[code].http_status != status or problem.get("status") != status:
        tally.failures.append(f"{where}: {code} with status {status}")
    if code == "internal" or (status >= 500 and code not in ALLOWED_5XX):
        tally.failures.append(f"{where}: server error {problem}")


def fuzz_operation(
    operation: Any, examples: int, base: str, http: requests.Session, me: Principal, tally: Tally
) -> None:
    """Up to ``examples`` generated requests to one operation (fewer when hypothesis runs
    out of distinct inputs, as for a route without parameters)."""
    admin = operation.path.startswith("/v1/admin/")
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if operation.path_parameters or operation.body or operation.query:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def fuzz(case: schemathesis.Case) -> None:
        token = ADMIN if admin else me.token
        # A long poll would only make the run slow; its parameter is checked anyway.
        params = {"wait": "0"} if case.path.startswith("/v1/links/") else None
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(base_url=base, session=http, headers=headers, params=params,
                             timeout=30)  # fmt: skip
        check(response, case.method, case.path, tally)
        if response.status_code == 401 and b"auth.revoked" in response.content:
            me.renew()

    fuzz()


def test_schemathesis_finds_no_500_and_only_documented_codes(api_server: ServerProcess) -> None:
    base = api_server.url
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    tally = Tally()
    http = requests.Session()
    me = Principal(base, http)
    # Passes over every operation until FUZZ_CASES requests were sent: operations with
    # few distinct inputs end early, so later passes spread the rest over all of them.
    for _ in range(5):
        remaining = FUZZ_CASES - tally.requests
        if remaining <= 0:
            break
        per_operation = max(2, math.ceil(remaining / len(operations)))
        for operation in operations:
            fuzz_operation(operation, per_operation, base, http, me, tally)

    print(f"\nschemathesis: {tally.requests} requests over {len(operations)} operations, "
          f"{len(tally.failures)} failures; statuses {dict(sorted(tally.statuses.items()))}, "
          f"codes {dict(sorted(tally.codes.items()))}")  # fmt: skip
    assert tally.failures == [], "\n".join(tally.failures[:40])
    assert tally.requests >= FUZZ_CASES
    assert "Traceback" not in api_server.log(), api_server.log()[-4000:]
