"""Events the client hands to the application through ``Client.events()``.

Inbox events (:class:`Message`, :class:`Receipt`, :class:`GroupChange`) carry the
inbox ``seq``; the client acks them once the application has taken them.
Everything else is a fact about this client run (connection state, send
outcomes) or an ephemeral signal (typing, presence) and may be dropped when
the application falls behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from taube.client.content import AnyContent, Unsupported, content_text
from taube.client.status import Incident


@dataclass(frozen=True, slots=True)
class Message:
    """A message for this device. ``conversation`` is ``@peer`` or ``#group`` from our side."""

    seq: int
    id: str
    conversation: str
    sender: str
    sender_device: int
    sent_at_ms: int
    content: AnyContent
    payload: bytes
    encrypted: bool = True
    """False for a payload that was not end-to-end encrypted (a client without
    encryption, or someone who can write to the server): show it as such."""

    @property
    def decrypted(self) -> bool:
        """False when the message could not be decrypted (a resend was requested)."""
        return not (isinstance(self.content, Unsupported) and self.content.type == "undecryptable")

    @property
    def text(self) -> str | None:
        """The text to show, or None for content this client cannot show."""
        return content_text(self.content)


@dataclass(frozen=True, slots=True)
class Receipt:
    """``by`` received (``delivered``) or read the messages ``ids``.

    ``sender`` is set when ``by`` is you (read on another of your devices): whose
    messages ``ids`` are.
    """

    seq: int
    status: Literal["delivered", "read"]
    conversation: str
    by: str
    by_device: int
    ids: tuple[str, ...]
    at_ms: int
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A change to a group we are (or were) in; ``group`` is the id, address ``#id``."""

    seq: int
    group: str
    event: str
    actor: str
    members: tuple[str, ...]
    name: str
    at_ms: int

    @property
    def address(self) -> str:
        return f"#{self.group}"


@dataclass(frozen=True, slots=True)
class Typing:
    conversation: str
    user: str
    active: bool


@dataclass(frozen=True, slots=True)
class Presence:
    user: str
    online: bool
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class Sent:
    """The server stored our message ``id`` (the first tick)."""

    id: str
    sent_at_ms: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The server refused our message ``id`` for good; it left the outbox."""

    id: str
    to: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Connected:
    server: str
    handle: str
    device: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection to ``server`` ended or could not be made; retrying after ``retry_in`` s."""

    server: str
    reason: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class Notice:
    """A service notice from the operators ("maintenance at 22:00", "we have a problem").

    ``level`` is ``info``, ``warning`` or ``outage``; show it prominently. The same
    notice (``id``) may come again after a reconnect: show it once.
    """

    id: str
    text: str
    level: str
    at_ms: int
    signed: bool = False
    """Its signature verified with the servers' status key. A notice whose signature
    does not verify is dropped (logged), never handed to the application."""


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What the status document says while this client cannot connect to any server.

    Show ``text`` instead of a bare connection error ("It's not you: incident #12 since
    07:12 UTC, delivery delayed"). ``verdict`` is the one to show (``unknown`` once the
    document is stale, unless it reports an outage); ``verified`` is False when the
    document could not be checked with a key this device trusts, and then ``incidents``
    is empty (their words could be anyone's). Emitted again when the picture changes;
    the next :class:`Connected` ends it.
    """

    verdict: str
    incidents: tuple[Incident, ...]
    fresh: bool
    verified: bool
    text: str
    generated_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SecurityCodeChanged:
    """``user`` has a new device or new keys: their safety number changed.

    If you had verified it, sends to them are refused until you verify again.
    """

    user: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """A non-fatal error frame not tied to a queued message (e.g. a bad ``read``)."""

    code: str
    message: str
    ref: str | None
    details: dict[str, Any] | None


InboxEvent = Message | Receipt | GroupChange
Event = (
    Message
    | Receipt
    | GroupChange
    | Typing
    | Presence
    | Sent
    | SendFailed
    | Connected
    | Disconnected
    | Notice
    | ServiceStatus
    | SecurityCodeChanged
    | ServerError
)
