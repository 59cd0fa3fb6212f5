"""The composition root: build the concrete store, bus and services from a Config.

This is the only place (besides the CLI) that picks implementations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
from aiohttp import web

from taube.blobs.filesystem import FilesystemBlobStorage
from taube.bus.base import Bus, BusUnavailable
from taube.bus.local import LocalBus
from taube.core.abuse import Abuse
from taube.core.accounts import Accounts, Argon2Params
from taube.core.blobs import BlobService
from taube.core.blocks import Blocks
from taube.core.clock import Clock, system_clock
from taube.core.delivery import DeliveryService
from taube.core.directory import Directory
from taube.core.groups import Groups
from taube.core.keys import KeysService
from taube.core.links import Links
from taube.core.notices import Notices
from taube.core.presence import PresenceService
from taube.core.secret_box import derive_totp_key
from taube.core.shared_lockout import SharedLockout
from taube.server.abuse_api import ABUSE_ROUTES
from taube.server.admission import Admission, RateLimits
from taube.server.api import ROUTES
from taube.server.auth_api import AUTH_ROUTES
from taube.server.config import Config, ConfigError, load_config
from taube.server.endpoints import direct_upgrade, websocket_handler
from taube.server.gateway import CONNECTIONS, SERVICES, Connections
from taube.server.http import problem_middleware
from taube.server.limits import Limits
from taube.server.openapi import openapi_document
from taube.server.services import NodeState, Services
from taube.server.status_api import STATUS_ROUTES, add_status_pages
from taube.server.transport import EDGE, GuardedSite, install_edge, make_ssl_context
from taube.server.web import add_web_routes
from taube.status.reports import ReportRule
from taube.status.service import StatusService, StatusSettings
from taube.status.signing import Signer, load_or_create_seed, notice_fields, parse_seed
from taube.status.verdict import Thresholds
from taube.store import sqlite as sqlite_module
from taube.store.base import NoticeRecord, SchemaTooNew, Store, StoreUnavailable
from taube.store.sqlite import SqliteStore
from taube.store.sqlite_driver import sqlite3

log = logging.getLogger("taube.server")


def make_store(config: Config) -> Store:
    if config.uses_postgres:
        from taube.store.postgres import PostgresStore

        return PostgresStore(config.store)
    return SqliteStore(config.sqlite_path, synchronous=config.durability.upper())


def make_bus(config: Config, on_reconnect: Callable[[], None] | None = None) -> Bus:
    """``on_reconnect``: called after the NATS connection came back (never for local)."""
    if config.bus == "local":
        return LocalBus()
    from taube.bus.nats import NatsBus

    return NatsBus(
        [url.strip() for url in config.bus.split(",")],
        node=config.node_name,
        on_reconnect=on_reconnect,
    )


SIGNING_KEY_FILE = "status-signing.key"
STATUS_RETENTION_DAYS = 90


def status_seed(config: Config) -> bytes:
    """The configured status signing key, or the one kept in the data folder (made on
    first start, mode 0600), so that a single node works out of the box."""
    if config.status_signing_key:
        return parse_seed(config.status_signing_key)
    return load_or_create_seed(config.data_dir / SIGNING_KEY_FILE)


def probe_base_url(config: Config) -> str:
    """Where this node's canaries reach its own gateway."""
    host = config.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if config.tls_cert else 'http'}://{host}:{config.port}"


def status_settings(config: Config) -> StatusSettings:
    return StatusSettings(
        node=config.node_name,
        base_url=probe_base_url(config),
        canary_interval_s=config.status_canary_interval_s,
        probe_timeout_s=config.status_probe_timeout_s,
        canaries=config.status_canaries,
        thresholds=Thresholds(degraded_p99_ms=config.status_degraded_p99_ms),
        quorum=config.status_quorum,
        recover_after_s=config.status_recover_after_s,
        slo_send_target=config.status_slo_send_target,
        slo_send_within_ms=config.status_slo_send_within_ms,
        reports=ReportRule(
            window_min=config.status_report_window_min,
            factor=config.status_report_spike_factor,
            min_count=config.status_report_min_count,
        ),
        node_forget_h=config.status_node_forget_h,
        public_url=config.status_public_url,
        webhook_backoff_s=config.status_webhook_backoff_s,
        webhook_max_attempts=config.status_webhook_max_attempts,
    )


def build_services(
    config: Config,
    clock: Clock = system_clock,
    on_bus_reconnect: Callable[[], None] | None = None,
) -> Services:
    store = make_store(config)
    bus = make_bus(config, on_bus_reconnect)
    directory = Directory(store, bus)
    abuse = Abuse(store, bus, clock, directory)
    delivery = DeliveryService(
        store,
        bus,
        clock,
        directory,
        max_payload_bytes=config.max_payload_bytes,
        is_suspended=abuse.is_suspended,
    )
    presence = PresenceService(store, bus, clock, node=config.node_name, directory=directory)
    day_ms = 24 * 3600 * 1000
    # Every node has the status signing seed and a cluster's nodes share it, so the key
    # sealing TOTP secrets needs no setting of its own and stays out of the database.
    seed = status_seed(config)
    accounts = Accounts(
        store,
        bus,
        clock,
        directory,
        totp_key=derive_totp_key(seed),
        argon2_params=Argon2Params(
            config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism
        ),
        token_idle_ms=int(config.token_idle_days * 24 * 3600 * 1000),
        is_suspended=abuse.is_suspended,
    )
    signer = Signer(seed)

    def sign_notice(record: NoticeRecord) -> str:
        return signer.sign(notice_fields(record.id, record.text, record.level, record.at_ms))

    notices = Notices(store, bus, clock, sign=sign_notice)
    status = StatusService(
        status_settings(config),
        store=store,
        bus=bus,
        clock=clock,
        accounts=accounts,
        notices=notices,
        signer=signer,
        seed=seed,
    )
    services = Services(
        config=config,
        clock=clock,
        store=store,
        bus=bus,
        directory=directory,
        accounts=accounts,
        delivery=delivery,
        groups=Groups(store, delivery, directory, clock, max_members=config.max_group_members),
        presence=presence,
        keys=KeysService(
            store,
            bus,
            min_one_time=config.min_one_time_prekeys,
            max_one_time=config.max_one_time_prekeys,
        ),
        blobs=BlobService(
            store,
            FilesystemBlobStorage(config.blob_path),
            directory,
            clock,
            max_bytes=config.blob_max_bytes,
            max_chunk_bytes=config.blob_max_chunk_bytes,
            retention_ms=int(config.blob_retention_days * day_ms),
            upload_retention_ms=int(config.blob_upload_retention_days * day_ms),
        ),
        blocks=Blocks(store, bus, clock, directory, presence),
        links=Links(store, bus, clock, accounts, ttl_ms=int(config.link_ttl_s * 1000)),
        notices=notices,
        status=status,
        node=NodeState(
            Admission(
                sessions_per_s=config.max_sessions_per_s,
                logins_per_s=config.max_logins_per_s,
                max_handshakes=config.max_handshakes,
            ),
            RateLimits(per_s=config.key_fetches_per_min / 60.0, burst=config.key_fetches_per_min),
            link_starts=RateLimits(
                per_s=config.link_starts_per_min / 60.0, burst=config.link_starts_per_min
            ),
            link_approvals=RateLimits(
                per_s=config.link_approvals_per_min / 60.0, burst=config.link_approvals_per_min
            ),
            reports=RateLimits(
                per_s=config.status_reports_per_min / 60.0, burst=config.status_reports_per_min
            ),
            limits=Limits.from_config(config),
        ),
        abuse=abuse,
    )
    store.on_settled(services.node.after_commit)
    return services


def build_app(config: Config, clock: Clock = system_clock) -> web.Application:
    connections = Connections()
    # Doorbells rung while this node was cut off from NATS are lost: catch up at once
    # instead of at each connection's next catch-up poll.
    services = build_services(config, clock, on_bus_reconnect=connections.catch_up)
    app = web.Application(middlewares=[problem_middleware], client_max_size=config.max_body_bytes)
    app[SERVICES] = services
    app[CONNECTIONS] = connections
    # The login lockout counts every node's failures (core/shared_lockout.py).
    lockout = SharedLockout(services.bus, services.node.limits.login_guard, config.node_name)
    install_edge(app, config)  # trusted proxies, connections per address
    for route in [*ROUTES, *AUTH_ROUTES, *STATUS_ROUTES, *ABUSE_ROUTES]:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/v1/ws", websocket_handler)
    add_status_pages(app)
    document = msgspec.json.encode(
        openapi_document([*ROUTES, *AUTH_ROUTES, *STATUS_ROUTES, *ABUSE_ROUTES])
    )

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    add_web_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await services.store.open()
        # Before serving: TOTP secrets an older version wrote in the clear are sealed
        # (they keep working meanwhile, so a store that fails here only defers it).
        try:
            if sealed := await services.accounts.two_step.seal_legacy():
                log.info("sealed %d two-step verification secrets stored in the clear", sealed)
        except StoreUnavailable:
            log.warning("could not seal the two-step secrets stored in the clear; next start")
        await services.blobs.storage.open()
        await services.bus.open()
        await services.directory.start()
        await services.abuse.start()
        await lockout.start()
        await services.presence.start()
        await services.links.start()
        services.notices.listen(connections.broadcast)
        await services.notices.start()
        await services.status.start()
        retention = asyncio.create_task(purge_old_messages(services))
        sweeper = asyncio.create_task(
            connections.sweep_forever(config.idle_timeout_s, config.heartbeat_s)
        )
        log.info(
            "node %s: store %s, bus %s",
            config.node_name,
            "postgresql" if config.uses_postgres else config.sqlite_path,
            config.bus,
        )
        yield
        for task in (retention, sweeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await services.status.stop()
        # The store first: queued commits finish and their doorbells still ring.
        await services.store.close()
        await services.notices.stop()
        await services.links.stop()
        await services.presence.stop()
        await services.abuse.stop()
        await lockout.stop()
        await services.directory.stop()
        await services.bus.close()
        await services.blobs.storage.close()

    async def close_connections(app: web.Application) -> None:
        # Without this, shutdown waits for every open WebSocket to end by itself.
        services.node.draining = True
        connections = list(app[CONNECTIONS].open)
        await asyncio.gather(*(c.move_elsewhere() for c in connections), return_exceptions=True)
        if connections:
            log.info("drain: told %d connections to move", len(connections))
        await app[CONNECTIONS].wait_direct(SHUTDOWN_TIMEOUT_S)

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_connections)
    return app


PURGE_EVERY_S = 3600.0
SHUTDOWN_TIMEOUT_S = 5.0
PURGE_CHUNK = 10_000
LINK_GRACE_MS = 3_600_000
"""Device links (and a token nobody took) are deleted this long after they expired."""


async def purge_old_messages(services: Services) -> None:
    """Hourly (and once at start): forget delivered messages past retention, in small
    transactions; delete expired device links and notices, expired blobs and stale
    uploads (core/blobs.py)."""
    retention_ms = int(services.config.message_retention_days * 24 * 3600 * 1000)
    while True:
        try:
            cutoff = services.clock() - retention_ms
            total = 0
            while (purged := await services.store.purge_messages(cutoff, PURGE_CHUNK)) > 0:
                total += purged
                await asyncio.sleep(0.1)  # let live traffic through between chunks
            if total:
                log.info("retention: forgot %d delivered messages", total)
            links = await services.store.purge_links(services.clock() - LINK_GRACE_MS, PURGE_CHUNK)
            await services.store.purge_notices(services.clock())
            if links:
                log.info("retention: deleted %d expired device links", links)
            day_ms = 24 * 3600 * 1000
            status_rows = await services.store.purge_status(
                services.clock() - STATUS_RETENTION_DAYS * day_ms
            )
            if status_rows:
                log.info("retention: deleted %d status rows older than 90 days", status_rows)
            blobs, uploads = await services.blobs.sweep()
            if blobs or uploads:
                log.info("retention: deleted %d blobs and %d stale uploads", blobs, uploads)
        except Exception:
            log.exception("retention job failed; retrying in an hour")
        await asyncio.sleep(PURGE_EVERY_S)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Our format shows no source location, so logging need not look for it: finding it
    # walks the stack, and on Python 3.11 that turns every suspended coroutine frame
    # of the caller into a frame object that lives as long as the coroutine. Each
    # WebSocket's "connected" line measured ~0.3 KiB per idle connection that way.
    # (The Logging HOWTO's "Optimization" section names this switch.)
    logging._srcfile = None


async def serve_until_stopped(config: Config, stop: asyncio.Event | None = None) -> None:
    """Open the store, bind the port, serve until SIGINT/SIGTERM (or ``stop``), clean up."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ssl_context = make_ssl_context(config)
    runner = web.AppRunner(
        build_app(config),
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        keepalive_timeout=config.idle_timeout_s,
    )
    await runner.setup()
    try:
        site = GuardedSite(
            runner,
            config.host,
            config.port,
            runner.app[EDGE],
            ssl_context=ssl_context,
            offer=direct_upgrade(runner.app),
        )
        await site.start()
        # Everything allocated so far lives as long as the process: keep it out of the
        # cyclic collector's work, and collect young objects less often (a busy node
        # allocates several short-lived objects per message; full passes cost more).
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        log.info("serving on %s (hot path: %s)", site.name, hot_path())
        await stop.wait()
        # Drain: stop accepting, fail readiness, tell clients to move (on_shutdown),
        # let in-flight commits finish (the store flushes on close), then exit.
        log.info("draining")
        runner.app[SERVICES].node.draining = True
        await site.stop()
    finally:
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped")


def hot_path() -> str:
    """Whether the hot path runs compiled (``make compile``, Makefile) or as source (the
    SQLite store stands for the compiled modules), and on which SQLite
    (store/sqlite_driver.py)."""
    where = sqlite_module.__file__
    compiled = where is not None and where.endswith(".so")
    how = "compiled with mypyc" if compiled else "interpreted"
    return f"{how}; SQLite {sqlite3.sqlite_version} from {sqlite3.__name__.split('.')[0]}"


def run_server(config: Config) -> None:
    """Serve until SIGINT or SIGTERM."""
    configure_logging(config.log_level)
    try:
        import uvloop
    except ImportError:  # uvloop is optional off Linux/macOS
        asyncio.run(serve_until_stopped(config))
    else:
        uvloop.run(serve_until_stopped(config))


def serve(
    config_path: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    store: str | None = None,
    bus: str | None = None,
    node: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """Load the configuration and serve; returns an exit code, with a one-line reason on
    stderr for the mistakes an operator can fix (bad config, newer database, busy port)."""
    try:
        config = load_config(
            config_path,
            host=host,
            port=port,
            data_dir=data_dir,
            store=store,
            bus=bus,
            node=node,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        run_server(config)
    except (ConfigError, SchemaTooNew) as exc:
        print(f"taube: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, BusUnavailable) as exc:
        print(f"taube: cannot start: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"taube: cannot open the database: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"taube: cannot serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def upgrade_database(
    config_path: Path | None, *, store: str | None = None, data_dir: Path | None = None
) -> int:
    """``taube db upgrade``: migrate the configured store in place and report the version."""
    try:
        config = load_config(config_path, store=store, data_dir=data_dir)
        target = make_store(config)

        async def run() -> None:
            await target.open()  # migrates (under an advisory lock on PostgreSQL)
            await target.close()

        asyncio.run(run())
    except (ConfigError, SchemaTooNew) as exc:
        print(f"taube: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, sqlite3.Error, OSError) as exc:
        print(f"taube: cannot open the store: {exc}", file=sys.stderr)
        return 1
    where = "postgresql" if config.uses_postgres else str(config.sqlite_path)
    print(f"schema up to date ({where})")
    return 0
