"""Taube's client SDK: a device's durable outbox, resumable inbox and HTTP API.

Typical use::

    from taube.client import Client, login

    await login("alice", password, servers="http://127.0.0.1:8080", profile="./alice")
    async with Client("./alice") as client:
        message_id = await client.send("@bob", "hello")
        await client.wait_sent([message_id], timeout=10)
        async for event in client.events():
            ...

Everything importable from here is the public API; the modules behind it may move.
"""

from taube.client.account import login, logout, register
from taube.client.api import Api, normalize_servers
from taube.client.backoff import Backoff
from taube.client.client import Client, ClientOptions
from taube.client.content import (
    AnyContent,
    Attachment,
    Content,
    Delete,
    Disappearing,
    Edit,
    MessageRef,
    Poll,
    Reaction,
    Text,
    Unsupported,
    Vote,
    content_text,
    decode_content,
    encode_content,
)
from taube.client.errors import (
    NotLoggedIn,
    ProfileError,
    SendTimeout,
    ServerUnreachable,
    TaubeApiError,
    TaubeClientError,
    UntrustedIdentity,
)
from taube.client.events import (
    Connected,
    Disconnected,
    Event,
    GroupChange,
    InboxEvent,
    Message,
    Notice,
    Presence,
    Receipt,
    SecurityCodeChanged,
    SendFailed,
    Sent,
    ServerError,
    ServiceStatus,
    Typing,
)
from taube.client.history import ChatSummary, HistoryItem, PollTally
from taube.client.profile import (
    OutboxEntry,
    Profile,
    StatusState,
    StoredSession,
    default_profile_dir,
)
from taube.client.status import (
    Incident,
    StatusDocument,
    StatusForged,
    StatusUnavailable,
    StatusView,
    fetch_status,
)

__all__ = [
    "AnyContent",
    "Api",
    "Attachment",
    "Backoff",
    "ChatSummary",
    "Client",
    "ClientOptions",
    "Connected",
    "Content",
    "Delete",
    "Disappearing",
    "Disconnected",
    "Edit",
    "Event",
    "GroupChange",
    "HistoryItem",
    "InboxEvent",
    "Incident",
    "Message",
    "MessageRef",
    "NotLoggedIn",
    "Notice",
    "OutboxEntry",
    "Poll",
    "PollTally",
    "Presence",
    "Profile",
    "ProfileError",
    "Reaction",
    "Receipt",
    "SecurityCodeChanged",
    "SendFailed",
    "SendTimeout",
    "Sent",
    "ServerError",
    "ServerUnreachable",
    "ServiceStatus",
    "StatusDocument",
    "StatusForged",
    "StatusState",
    "StatusUnavailable",
    "StatusView",
    "StoredSession",
    "TaubeApiError",
    "TaubeClientError",
    "Text",
    "Typing",
    "Unsupported",
    "UntrustedIdentity",
    "Vote",
    "content_text",
    "decode_content",
    "default_profile_dir",
    "encode_content",
    "fetch_status",
    "login",
    "logout",
    "normalize_servers",
    "register",
]
