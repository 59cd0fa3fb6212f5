"""Pure helpers of the HTTP layer: server lists, URLs, problem bodies -> exceptions."""

from __future__ import annotations

import msgspec
import pytest

import taube.client
from taube.client import NotLoggedIn, TaubeApiError, normalize_servers
from taube.client.api import group_id, problem_to_error
from taube.client.client import ws_url
from taube.protocol.api import Problem


def test_server_lists() -> None:
    assert normalize_servers("http://a:1/, https://b ,") == ("http://a:1", "https://b")
    assert normalize_servers(["http://a"]) == ("http://a",)
    with pytest.raises(ValueError, match="http"):
        normalize_servers("a:8080")
    with pytest.raises(ValueError, match="at least one"):
        normalize_servers(" , ")


def test_ws_urls() -> None:
    assert ws_url("http://h:8080") == "ws://h:8080/v1/ws"
    assert ws_url("https://h") == "wss://h/v1/ws"


def test_group_ids_with_or_without_hash() -> None:
    assert group_id("#abc") == group_id("abc") == "abc"


def problem(code: str, status: int) -> bytes:
    return msgspec.json.encode(
        Problem(type="about:blank", title="t", status=status, code=code, detail="human words")
    )


def test_problem_bodies_become_typed_errors() -> None:
    err = problem_to_error(404, problem("user.not_found", 404), "application/problem+json")
    assert isinstance(err, TaubeApiError)
    assert (err.code, err.message, err.status) == ("user.not_found", "human words", 404)
    revoked = problem_to_error(401, problem("auth.revoked", 401), "application/problem+json")
    assert isinstance(revoked, NotLoggedIn)
    assert revoked.code == "auth.revoked"
    bad_password = problem_to_error(401, problem("auth.bad_credentials", 401), "application/json")
    assert isinstance(bad_password, TaubeApiError)
    garbage = problem_to_error(502, b"<html>bad gateway</html>", "text/html")
    assert isinstance(garbage, TaubeApiError)
    assert garbage.code == "http.502"


def test_public_api_is_exported() -> None:
    for name in taube.client.__all__:
        assert hasattr(taube.client, name), name
    assert sorted(taube.client.__all__) == taube.client.__all__
