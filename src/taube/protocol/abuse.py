"""Bodies of the abuse routes: a user's report to the operator's review queue, the
operator's view of that queue, and account suspension (docs/security.md, "Abuse").

A report carries only what the reporter chose: the reported handle, a reason, and the
messages they picked from their own history, as decrypted on their device. The server
cannot check that those messages are genuine (it never saw their plaintext); the
operator weighs them as the reporter's word.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from taube.protocol.api import Body

MAX_REPORTED_MESSAGES = 100
MAX_REPORTED_TEXT = 65536
MAX_REASON = 1000

HandleText = Annotated[str, msgspec.Meta(min_length=1, max_length=33)]


class ReportedMessage(Body, frozen=True):
    """One message as the reporter's device shows it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    sender: HandleText
    sent_at_ms: Annotated[int, msgspec.Meta(ge=0)]
    text: Annotated[str, msgspec.Meta(max_length=MAX_REPORTED_TEXT)] = ""


ReportedMessages = Annotated[list[ReportedMessage], msgspec.Meta(max_length=MAX_REPORTED_MESSAGES)]


class AbuseReportCreate(Body, frozen=True):
    """``POST /v1/reports/abuse``: report ``user``, with the chosen messages."""

    user: HandleText
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)]
    messages: ReportedMessages = msgspec.field(default_factory=list)


class AbuseReportQueued(Body, frozen=True):
    id: int


class AbuseReport(Body, frozen=True):
    id: int
    reporter: str
    reporter_device: int
    user: str
    reason: str
    messages: list[ReportedMessage]
    created_ms: int
    suspended: bool
    """Whether ``user`` is suspended now."""


class AbuseReportList(Body, frozen=True):
    reports: list[AbuseReport]


class SuspendRequest(Body, frozen=True):
    """``POST /v1/admin/accounts/{handle}/suspend``."""

    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] = ""


class Suspension(Body, frozen=True):
    handle: str
    suspended: bool
    reason: str = ""
    at_ms: int | None = None
