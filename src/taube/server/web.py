"""The browser client's files, and the security headers every HTTP answer carries.

The web client is built from web/ (TypeScript, ``make web``) into
``taube/web/static`` inside the package; this module serves ``/`` (the page) and
``/static/<file>`` (its assets). The page runs under a strict Content Security
Policy: scripts, styles, fonts and images only from this server, no inline code,
no framing, connections only back to this server (HTTP API and WebSocket).

Every HTTP answer, API included, gets the headers that cost nothing and close
common holes (no MIME sniffing, no referrer leaks, no framing). A node whose
client was not built still serves the API and says so at ``/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from aiohttp import web

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
COMMON_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
}
NOT_BUILT: Final = (
    "<!doctype html><meta charset=utf-8><title>Taube</title>"
    "<p>This Taube server runs, but its web client was not built. "
    "Run <code>make web</code> (or <code>make run</code>) in the source folder."
)


def static_dir() -> Path:
    return Path(str(resources.files("taube") / "web" / "static"))


def add_web_routes(app: web.Application, root: Path | None = None) -> None:
    """``/`` and ``/static/{name}`` from ``root`` (default: the built client)."""
    folder = root or static_dir()

    async def page(request: web.Request) -> web.StreamResponse:
        index = folder / "index.html"
        if not index.is_file():
            return web.Response(
                text=NOT_BUILT, content_type="text/html", status=503, headers=PAGE_HEADERS
            )
        return web.FileResponse(index, headers=PAGE_HEADERS)

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        # Only plain names from the build folder: no paths, no dotfiles.
        if "/" in name or "\\" in name or name.startswith(".") or name == "index.html":
            raise web.HTTPNotFound()
        path = folder / name
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset)
    app.on_response_prepare.append(_common_headers)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:
        # A WebSocket upgrade: these headers mean nothing to it, and the response object
        # lives as long as the socket (they measured ~1 KiB per idle connection).
        return
    for name, value in COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
