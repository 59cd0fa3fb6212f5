"""The core services one node runs, built once by the composition root (app.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from taube.bus.base import Bus
from taube.core.abuse import Abuse
from taube.core.accounts import Accounts
from taube.core.blobs import BlobService
from taube.core.blocks import Blocks
from taube.core.clock import Clock
from taube.core.delivery import DeliveryService
from taube.core.directory import Directory
from taube.core.groups import Groups
from taube.core.keys import KeysService
from taube.core.links import Links
from taube.core.notices import Notices
from taube.core.presence import PresenceService
from taube.server.admission import Admission, RateLimits
from taube.server.after_commit import AfterCommit
from taube.server.config import Config
from taube.server.limits import Limits
from taube.status.service import StatusService
from taube.store.base import Store


@dataclass
class NodeState:
    """What changes while a node runs: admission counters, per-account (and per-address)
    rate limits and whether it is draining."""

    admission: Admission
    key_fetches: RateLimits
    link_starts: RateLimits
    """Device links started, per client address."""
    link_approvals: RateLimits
    """Link approvals tried, per account."""
    reports: RateLimits
    """User reports (``POST /v1/reports``), per client address and per account."""
    limits: Limits
    """The ``[rate]`` limits and the login lockout (server/limits.py)."""
    draining: bool = False
    after_commit: AfterCommit = field(default_factory=AfterCommit)
    """Run by the store when a batch is durable (``Store.on_settled``)."""


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    clock: Clock
    store: Store
    bus: Bus
    directory: Directory
    accounts: Accounts
    delivery: DeliveryService
    groups: Groups
    presence: PresenceService
    keys: KeysService
    blobs: BlobService
    blocks: Blocks
    links: Links
    notices: Notices
    status: StatusService
    node: NodeState
    abuse: Abuse
