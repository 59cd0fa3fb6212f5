"""The server's web routes: the page under a strict CSP, assets by plain name only,
and the common security headers on every answer (API included)."""

from __future__ import annotations

import urllib.error
import urllib.request

from taube.server.web import CONTENT_SECURITY_POLICY, static_dir
from tests.serverproc import ServerProcess


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_has_a_strict_policy_and_assets_are_served_by_plain_name_only(
    server: ServerProcess,
) -> None:
    status, headers, body = fetch(server.url + "/")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    if (static_dir() / "index.html").is_file():
        assert status == 200
        assert b"<script" in body
        assert b"<script>" not in body  # no inline code: the policy would refuse it
        status, headers, _ = fetch(server.url + "/static/app.js")
        assert status == 200
        assert "javascript" in headers["Content-Type"]
    else:  # a node without the built client still tells the operator what to do
        assert status == 503
        assert b"make web" in body
    for bad in ("/static/..%2Fserver%2Fweb.py", "/static/.built", "/static/nope.js"):
        assert fetch(server.url + bad)[0] == 404


def test_every_answer_carries_the_common_security_headers(server: ServerProcess) -> None:
    for path in ("/", "/healthz", "/v1/me", "/openapi.json"):
        _, headers, _ = fetch(server.url + path)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
