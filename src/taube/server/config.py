"""Server configuration: one frozen object, read once from TOML, environment and flags.

Precedence (later wins): built-in defaults, the TOML file, ``TAUBE_*`` environment
variables, command-line flags. Unknown keys in the TOML file are an error, so a
typo never silently falls back to a default. See docs/operations.md for a sample.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path("./data"))
    store: str = ""
    """Store URL: empty for SQLite at <data_dir>/taube.db, ``sqlite:///PATH``, or
    ``postgresql://USER@HOST/DB`` (cluster mode: every node points at the same one)."""
    bus: str = "local"
    """``local`` (one node) or ``nats://HOST:PORT`` (several, comma-separated)."""
    node: str = ""
    """This node's name in logs and in NATS (default: host name and port)."""
    durability: str = "normal"
    """"normal": an acknowledged message survives a crash or kill -9 of the server
    (SQLite WAL, synchronous=NORMAL). "full": it also survives power loss (one fsync
    per group commit)."""
    ack_delay_ms: float = 50.0
    """How long a connection's ack of fewer than 16 new items waits for the next acks
    of that connection before it is committed (0: at once). A chat's acks, and the
    delivered receipts and receipt acks they make, are folded: at 5,000 messages/s
    over 100 chats this saves a fifth of the server's CPU. A crash in that time sends
    the items again (clients drop replays); a clean stop or close commits them."""
    message_retention_days: float = 30.0
    """How long a delivered message's id is remembered to drop retries (and its shared
    payload kept); undelivered messages are kept until every recipient device acks."""
    max_payload_bytes: int = 64 * 1024
    max_frame_bytes: int = 4 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024
    max_group_members: int = 1024
    max_unacked_items: int = 1000
    key_fetches_per_min: float = 120.0
    """Prekey bundle fetches (``GET /v1/keys/{handle}``) per account per minute, per
    node; the burst is the same number."""
    min_one_time_prekeys: int = 20
    """A device with fewer one-time prekeys on the server is told ``keys_low`` (0: never)."""
    max_one_time_prekeys: int = 1000
    """One-time prekeys stored per device at most."""
    token_idle_days: float = 90.0
    auth_timeout_s: float = 10.0
    heartbeat_s: float = 30.0
    # Transport (server/transport.py, docs/operations.md "TLS and proxies").
    tls_cert: str = ""
    """PEM certificate chain; with ``tls_key`` the node serves HTTPS and WSS itself."""
    tls_key: str = ""
    """PEM private key of ``tls_cert``."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (``10.0.0.0/8``) of proxies whose ``proxy_header`` names
    the client; nobody else's is believed. Empty: the TCP peer is the client."""
    proxy_header: str = "x-forwarded-for"
    """``x-forwarded-for`` or ``forwarded`` (RFC 7239): the one the proxies set."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (``https://chat.example.org``) besides this server's own whose pages
    may open a WebSocket here."""
    handshake_timeout_s: float = 10.0
    """A connection must send its first request head (and a WebSocket its auth frame,
    and TLS its handshake) within this long."""
    idle_timeout_s: float = 75.0
    """A WebSocket with no frame or ping from the client this long is closed (4008),
    and so is an idle keep-alive HTTP connection. Longer than the clients' 20 s pings."""
    max_outbound_bytes: int = 4 * 1024 * 1024
    """Bytes queued for one connection and not taken by its socket; beyond, the
    connection is closed (4029 conn.slow_reader)."""
    slow_reader_timeout_s: float = 30.0
    """A connection whose socket takes nothing while frames wait this long is closed
    (4029 conn.slow_reader)."""
    max_connections_per_ip: int = 256
    """Open connections per client address (TCP, and WebSockets behind a proxy)."""
    frames_per_s: float = 200.0
    """Frames one WebSocket may send per second, on average ..."""
    frame_burst: float = 1000.0
    """... and at once. Beyond: ``rate.limited``; at twice the rate: closed (1008)."""
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    log_level: str = "info"
    max_sessions_per_s: float = 500.0
    """New WebSocket sessions a node admits per second (reconnect storms queue up)."""
    max_logins_per_s: float = 20.0
    """Registrations and logins per second (each costs an argon2 hash)."""
    max_handshakes: int = 256
    """WebSocket handshakes (connect until authenticated) in flight at once."""
    blob_dir: str = ""
    """Where attachment blobs are stored: empty for ``<data_dir>/blobs``. In a cluster,
    every node must see the same folder (a shared file system)."""
    blob_max_bytes: int = 100 * 1024 * 1024
    """The largest blob (attachment ciphertext) a client may upload."""
    blob_max_chunk_bytes: int = 8 * 1024 * 1024
    """The largest chunk of an upload in one request."""
    blob_retention_days: float = 30.0
    """Blobs are deleted this long after their upload, fetched or not."""
    blob_upload_retention_days: float = 1.0
    """Incomplete uploads are deleted this long after they started."""
    link_ttl_s: float = 300.0
    """A device link code works this long (``POST /v1/links``)."""
    link_starts_per_min: float = 10.0
    """Device links a client address may start per minute, per node (burst the same)."""
    link_approvals_per_min: float = 10.0
    """Link approvals (right or wrong code) an account may try per minute, per node."""
    # [rate]: per-node rate limits and the login lockout (docs/operations.md). Keys drop
    # the prefix: [rate] sends_per_s is rate_sends_per_s (env TAUBE_RATE_SENDS_PER_S).
    rate_registrations_per_hour: float = 30.0
    """Accounts a client address may register per hour (burst the same)."""
    rate_logins_per_min: float = 30.0
    """Logins (right or wrong) a client address may try per minute (burst the same)."""
    rate_account_logins_per_min: float = 10.0
    """Logins (right or wrong) per account per minute, from anywhere."""
    rate_sends_per_s: float = 50.0
    """Messages a device may send per second, on average ..."""
    rate_sends_burst: float = 500.0
    """... and at most this many at once (an outbox flushed after a time offline)."""
    rate_groups_per_hour: float = 60.0
    """Groups an account may create per hour (burst the same)."""
    rate_upload_mib_per_hour: float = 4096.0
    """Attachment bytes (MiB) an account may upload per hour (burst the same)."""
    rate_lookups_per_min: float = 120.0
    """User lookups (``GET /v1/users/{handle}``, key bundles and identities) per account
    per minute (burst the same): enumerating handles is slow."""
    rate_lockout_after: int = 5
    """Failed logins of an account before backoff: then 1 x base, doubling each failure."""
    rate_lockout_after_ip: int = 50
    """Failed logins from a client address (any accounts) before it backs off too."""
    rate_lockout_base_s: float = 1.0
    rate_lockout_max_s: float = 900.0
    admin_token: str = field(default="", repr=False)
    """The operator's bearer token for ``/v1/admin/*`` (service notices); empty: the
    admin API is off (its routes answer 404). Kept out of ``repr`` (and so out of logs)."""
    # [status]: docs/status.md. Keys drop the prefix: [status] quorum is status_quorum.
    status_canary_interval_s: float = 5.0
    """How often each node's canaries probe the real path."""
    status_probe_timeout_s: float = 10.0
    """A canary message not delivered (or a check not answered) within this failed."""
    status_canaries: bool = True
    """Run this node's prober (off: the node judges and serves the page, but measures nothing)."""
    status_signing_key: str = field(default="", repr=False)
    """Base64 Ed25519 seed (32 bytes) signing the status document and notices; empty: one
    is made in <data_dir>/status-signing.key. A cluster must set the same key everywhere."""
    status_public_url: str = ""
    """Where the exported status page lives (shown to clients, links in the feed)."""
    status_slo_send_target: float = 0.9995
    status_slo_send_within_ms: int = 5000
    status_degraded_p99_ms: float = 2000.0
    """Canary p99 latency above this is "degraded"."""
    status_quorum: int = 0
    """Probers that must agree on a component's status; 0: a majority of the nodes seen
    reporting in the last five minutes."""
    status_recover_after_s: float = 180.0
    """An automatic incident resolves after its components measured good this long."""
    status_report_window_min: int = 60
    status_report_spike_factor: float = 5.0
    status_report_min_count: int = 10
    status_reports_per_min: float = 5.0
    """User reports a client address (and an account) may send per minute, per node."""
    status_node_forget_h: float = 24.0
    """A node silent this long leaves the page (until then it shows as down)."""
    status_webhook_backoff_s: float = 1.0
    status_webhook_max_attempts: int = 6

    @property
    def uses_postgres(self) -> bool:
        return self.store.startswith(("postgresql://", "postgres://"))

    @property
    def node_name(self) -> str:
        return self.node or f"{socket.gethostname()}-{self.port}"

    @property
    def blob_path(self) -> Path:
        return Path(self.blob_dir) if self.blob_dir else self.data_dir / "blobs"

    @property
    def sqlite_path(self) -> Path:
        if self.store.startswith("sqlite:///"):
            return Path(self.store.removeprefix("sqlite:///"))
        return self.data_dir / "taube.db"


# TOML section -> keys it may hold (all map onto Config fields of the same name).
_SECTIONS: dict[str, tuple[str, ...]] = {
    "server": (
        "host",
        "port",
        "data_dir",
        "log_level",
        "heartbeat_s",
        "auth_timeout_s",
        "node",
        "tls_cert",
        "tls_key",
        "trusted_proxies",
        "proxy_header",
        "allowed_origins",
    ),
    "store": ("store", "durability", "ack_delay_ms", "message_retention_days"),
    "bus": ("bus",),
    "limits": (
        "max_payload_bytes",
        "max_frame_bytes",
        "max_body_bytes",
        "max_group_members",
        "max_unacked_items",
        "key_fetches_per_min",
        "min_one_time_prekeys",
        "max_one_time_prekeys",
        "handshake_timeout_s",
        "idle_timeout_s",
        "max_outbound_bytes",
        "slow_reader_timeout_s",
        "max_connections_per_ip",
        "frames_per_s",
        "frame_burst",
    ),
    "auth": (
        "token_idle_days",
        "argon2_time_cost",
        "argon2_memory_kib",
        "argon2_parallelism",
        "link_ttl_s",
        "link_starts_per_min",
        "link_approvals_per_min",
    ),
    "admission": ("max_sessions_per_s", "max_logins_per_s", "max_handshakes"),
    # [blobs] keys drop the prefix of their field: [blobs] max_bytes is blob_max_bytes.
    "blobs": ("dir", "max_bytes", "max_chunk_bytes", "retention_days", "upload_retention_days"),
    # [rate] sends_per_s is rate_sends_per_s (env TAUBE_RATE_SENDS_PER_S).
    "rate": (
        "registrations_per_hour",
        "logins_per_min",
        "account_logins_per_min",
        "sends_per_s",
        "sends_burst",
        "groups_per_hour",
        "upload_mib_per_hour",
        "lookups_per_min",
        "lockout_after",
        "lockout_after_ip",
        "lockout_base_s",
        "lockout_max_s",
    ),
    # [admin] token is admin_token (env TAUBE_ADMIN_TOKEN).
    "admin": ("token",),
    # [status] quorum is status_quorum (env TAUBE_STATUS_QUORUM).
    "status": (
        "canary_interval_s",
        "probe_timeout_s",
        "canaries",
        "signing_key",
        "public_url",
        "slo_send_target",
        "slo_send_within_ms",
        "degraded_p99_ms",
        "quorum",
        "recover_after_s",
        "report_window_min",
        "report_spike_factor",
        "report_min_count",
        "reports_per_min",
        "node_forget_h",
        "webhook_backoff_s",
        "webhook_max_attempts",
    ),
}
_PREFIX = {"blobs": "blob_", "admin": "admin_", "status": "status_", "rate": "rate_"}
_TYPES = {f.name: f.type for f in fields(Config)}
POSITIVE = (
    "max_body_bytes", "max_group_members", "max_unacked_items", "token_idle_days",
    "auth_timeout_s", "heartbeat_s", "message_retention_days", "argon2_time_cost",
    "argon2_parallelism", "max_sessions_per_s", "max_logins_per_s", "max_handshakes",
    "key_fetches_per_min", "max_one_time_prekeys", "blob_max_bytes", "blob_max_chunk_bytes",
    "blob_retention_days", "blob_upload_retention_days", "link_ttl_s", "link_starts_per_min",
    "link_approvals_per_min", "status_canary_interval_s", "status_probe_timeout_s",
    "status_slo_send_within_ms", "status_degraded_p99_ms", "status_recover_after_s",
    "status_report_window_min", "status_report_spike_factor", "status_report_min_count",
    "status_reports_per_min", "status_node_forget_h", "status_webhook_backoff_s",
    "status_webhook_max_attempts",
    "handshake_timeout_s", "idle_timeout_s", "max_outbound_bytes", "slow_reader_timeout_s",
    "max_connections_per_ip", "frames_per_s", "frame_burst",
    "rate_registrations_per_hour", "rate_logins_per_min", "rate_account_logins_per_min",
    "rate_sends_per_s", "rate_sends_burst", "rate_groups_per_hour", "rate_upload_mib_per_hour",
    "rate_lookups_per_min", "rate_lockout_after", "rate_lockout_after_ip",
    "rate_lockout_base_s", "rate_lockout_max_s",
)  # fmt: skip


def _coerce(key: str, value: Any) -> Any:
    kind = _TYPES[key]
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return text in {"true", "1", "yes"}
        if kind == "Path":
            return Path(str(value))
        if kind == "tuple[str, ...]":  # a TOML list, or comma-separated in the environment
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError
            return tuple(i.strip() for i in items if i.strip())
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key!r}: expected {kind}, got {value!r}") from None


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for section, body in raw.items():
        allowed = _SECTIONS.get(section)
        if allowed is None or not isinstance(body, dict):
            raise ConfigError(f"config file {path}: unknown section [{section}]")
        for key, value in body.items():
            if key not in allowed:
                raise ConfigError(f"config file {path}: unknown setting {section}.{key}")
            name = _PREFIX.get(section, "") + key
            values[name] = _coerce(name, value)
    return values


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    return {
        name: _coerce(name, environ[f"TAUBE_{name.upper()}"])
        for name in _TYPES
        if f"TAUBE_{name.upper()}" in environ
    }


def load_config(
    path: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    store: str | None = None,
    bus: str | None = None,
    node: str | None = None,
    environ: dict[str, str] | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> Config:
    """Build the Config; raises ConfigError with a message fit for the operator."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_from_toml(path))
    values.update(_from_env(dict(os.environ) if environ is None else environ))
    flags = {
        "host": host, "port": port, "data_dir": data_dir, "store": store, "bus": bus, "node": node
    }  # fmt: skip
    flags.update(tls_cert=tls_cert, tls_key=tls_key)
    values.update({k: v for k, v in flags.items() if v is not None})
    config = replace(Config(), **values)
    if not 0 < config.port < 65536:
        raise ConfigError(f"port {config.port} is out of range")
    if config.store and not (config.store.startswith("sqlite:///") or config.uses_postgres):
        raise ConfigError(
            f"store {config.store!r}: use sqlite:///PATH or postgresql://USER@HOST/DATABASE"
        )
    if config.bus != "local":
        if not all(url.strip().startswith(("nats://", "tls://")) for url in config.bus.split(",")):
            raise ConfigError(f"bus {config.bus!r}: use local or nats://HOST:PORT[,nats://...]")
        if not config.uses_postgres:
            raise ConfigError("a NATS bus joins several nodes: they need a postgresql:// store")
        if not config.status_signing_key:
            # Without it each node would make a key of its own: clients, who learn the
            # key from the node they log in to, would drop notices and status documents
            # that other nodes signed (as forged), and the canaries' passwords would differ.
            raise ConfigError(
                "a NATS bus joins several nodes: give them all the same [status] signing_key"
                " (TAUBE_STATUS_SIGNING_KEY); make one with: head -c 32 /dev/urandom | base64"
            )
    if config.durability not in {"normal", "full"}:
        raise ConfigError('durability must be "normal" or "full"')
    if config.max_payload_bytes < 1:
        raise ConfigError("max_payload_bytes must be positive")
    # A payload travels base64-encoded (4/3 larger) inside a JSON frame.
    smallest_frame = config.max_payload_bytes * 4 // 3 + 1024
    if config.max_frame_bytes < smallest_frame:
        raise ConfigError(
            f"max_frame_bytes must be at least {smallest_frame} to carry a full payload"
        )
    for name in POSITIVE:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive")
    if config.rate_upload_mib_per_hour * 1024 * 1024 < config.blob_max_chunk_bytes:
        raise ConfigError("rate upload_mib_per_hour must allow at least one blob chunk")
    check_transport(config)
    if config.ack_delay_ms < 0:
        raise ConfigError("ack_delay_ms must not be negative (0: commit acks at once)")
    if config.min_one_time_prekeys < 0:
        raise ConfigError("min_one_time_prekeys must not be negative")
    if config.argon2_memory_kib < 8 * config.argon2_parallelism:
        raise ConfigError("argon2_memory_kib must be at least 8 x argon2_parallelism")
    if not 0 < config.status_slo_send_target < 1:
        raise ConfigError("status slo_send_target must be between 0 and 1 (e.g. 0.9995)")
    if config.status_quorum < 0:
        raise ConfigError("status quorum must not be negative (0: a majority of the nodes)")
    if config.status_signing_key:
        from taube.status.signing import parse_seed

        try:
            parse_seed(config.status_signing_key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log_level must be debug, info, warning or error")
    return config


def check_transport(config: Config) -> None:
    """The transport settings make sense together (the files are read at serve time)."""
    from taube.server.transport import TrustedProxies, normalize_origin

    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("tls_cert and tls_key go together: set both or neither")
    try:
        TrustedProxies.parse(config.trusted_proxies, config.proxy_header)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for origin in config.allowed_origins:
        if normalize_origin(origin) is None:
            raise ConfigError(f"allowed_origins: {origin!r} is not scheme://host[:port]")
    if config.max_outbound_bytes < 512 * 1024:
        raise ConfigError("max_outbound_bytes must be at least 524288 (512 KiB)")
