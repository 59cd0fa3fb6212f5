"""End-to-end encryption in the SDK: keys on the server, sessions per device, fan-out.

:class:`E2ee` sits between the client's outbox and the wire (docs/e2ee.md,
sections 6-8):

* **Keys.** :meth:`E2ee.ensure_keys` creates this device's identity key, a
  signed prekey and one-time prekeys on first use and uploads their public
  halves; it tops the one-time prekeys up when the server says they run low and
  rotates the signed prekey weekly (the previous ones stay for a grace period).
* **Sending.** :meth:`E2ee.encrypt` turns one outbox entry into one payload per
  recipient device: every device of the peer and our own other devices for
  ``@user``; every member device for ``#group``, with the group content
  encrypted once under our sender key and the sender key distributed over the
  pairwise sessions to the devices that lack it (and rotated when a device left).
  Sessions are started from prekey bundles on demand.
* **Stale device lists.** :meth:`E2ee.apply_device_list` applies the server's
  ``msg.stale_devices`` answer (drops devices that left, fetches the new ones), and
  the client encrypts again under the same message id.
* **Receiving.** :meth:`E2ee.decrypt` opens a message; a failure becomes a
  :class:`Decrypted` with ``error`` set, and the client asks the sender to send it
  again (:meth:`E2ee.resend`).
* **Crossed sessions.** Two devices that send to each other before either has read
  the other both start a session, and each then replaces its own with the one the
  other's prekey message starts: each ends up sending in the session the other
  just put away. So a replaced session is kept (the last ``MAX_OLD_SESSIONS`` per
  device) and a message the current session cannot open is tried with those; the
  one that opens it becomes current again, and both ends settle on one session.
* **Trust.** A device's identity key is pinned when first seen. A new device or
  a different key of a known contact marks the contact "security code changed";
  sends to a *verified* contact whose keys changed are refused until the user
  verifies again (:class:`~taube.client.errors.UntrustedIdentity`).

Every state change happens in one profile transaction with what follows from it,
before the result is used (keystore invariant). Blocking work (SQLite, crypto)
runs on the profile thread through ``run``; only HTTP calls happen on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from taube.client import envelope as env
from taube.client.api import Api
from taube.client.errors import TaubeApiError, UntrustedIdentity
from taube.client.keystore import DeviceKey, KeyStore
from taube.crypto import (
    CryptoError,
    DuplicateMessage,
    IdentityKeyPair,
    InvalidMessage,
    OneTimePreKey,
    PreKeyBundle,
    PreKeyMessage,
    RatchetMessage,
    SafetyNumber,
    SenderKeyMessage,
    SenderKeyReceiver,
    SenderKeySender,
    Session,
    SignedPreKey,
    decode_pairwise,
    safety_number,
)
from taube.protocol import api
from taube.protocol.frames import DevicePayload
from taube.protocol.ids import parse_address

log = logging.getLogger("taube.client.e2ee")

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]

ONE_TIME_PREKEYS: Final = 100
"""How many one-time prekeys the server should hold for this device."""
LOW_WATER: Final = 20
SIGNED_PREKEY_ROTATION_MS: Final = 7 * 24 * 3600 * 1000
SIGNED_PREKEY_GRACE_MS: Final = 30 * 24 * 3600 * 1000
SENT_KEPT_MS: Final = 7 * 24 * 3600 * 1000
"""How long sent content is kept to answer resend requests."""
MAX_OLD_SESSIONS: Final = 5
"""Replaced sessions kept per device, for messages the other device may still send in
them (crossed starts need one; libsignal keeps up to 40)."""


class _Received(msgspec.Struct, frozen=True, omit_defaults=True):
    c: bytes
    o: str | None = None


_received_encoder: Final = msgspec.msgpack.Encoder()
_received_decoder: Final = msgspec.msgpack.Decoder(_Received)


@dataclass(frozen=True, slots=True)
class Decrypted:
    """What a message payload held, for the client to turn into an event.

    ``content`` is the content bytes to show (None: nothing to show, e.g. a pure
    key distribution, a resend meant for another device, or a replay). ``error`` is
    set when the payload could not be decrypted; ``retry_request`` when the payload
    is a resend request (message id, requesting device) addressed to this device;
    ``original_id`` when it is the resend of an earlier message.
    """

    content: bytes | None
    encrypted: bool
    error: str | None = None
    retry_request: tuple[str, int] | None = None
    original_id: str | None = None
    changed: tuple[str, ...] = ()


@dataclass(slots=True)
class _Pending:
    """A group send's sender-key holders, committed when the server stored the send."""

    group: str
    key_id: int
    holders: set[DeviceKey] = field(default_factory=set)


class E2ee:
    """One device's end-to-end encryption, on top of its profile's :class:`KeyStore`."""

    def __init__(
        self,
        handle: str,
        device: int,
        api_client: Api,
        keys: KeyStore,
        run: Runner,
        *,
        on_changed: Callable[[str], None] = lambda user: None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.handle = handle
        self.device = device
        self._api = api_client
        self._keys = keys
        self._run = run
        self._on_changed = on_changed
        self._random = random
        self._identity: IdentityKeyPair | None = None
        self._pending: dict[str, _Pending] = {}
        # Decoded sessions: decoding one costs an X25519 key derivation (~70 µs), more
        # than encrypting a message. The profile stays the truth; see _transaction.
        self._sessions: dict[DeviceKey, Session] = {}
        # The sender task (encrypt) and the reader task (stale device lists, resend
        # requests) can both find a session missing; each fetch consumes one of the
        # peer's one-time prekeys, so sessions are started one task at a time, and a
        # task that waited looks again before it fetches.
        self._starting = asyncio.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A profile transaction; if it rolls back, the session cache may hold states
        the profile never got, so it is dropped."""
        try:
            with self._keys.transaction():
                yield
        except BaseException:
            self._sessions.clear()
            raise

    def _session(self, user: str, device: int) -> Session | None:
        session = self._sessions.get((user, device))
        if session is None:
            state = self._keys.session(user, device)
            if state is None:
                return None
            session = Session.from_bytes(state, random=self._random)
            self._sessions[(user, device)] = session
        return session

    def _save_session(self, user: str, device: int, session: Session) -> None:
        self._keys.save_session(user, device, session.to_bytes())
        self._sessions[(user, device)] = session

    def _replace_session(self, user: str, device: int, session: Session) -> None:
        """Make ``session`` the one we send with; keep the one it replaces, which the
        other device may still be sending in (see "Crossed sessions" above)."""
        current = self._session(user, device)
        if current is session:
            self._save_session(user, device, session)
            return
        if current is not None:
            self._archive(user, device, current)
        self._keys.delete_old_session(user, device, session.base_key)  # if it was one
        self._save_session(user, device, session)

    def _archive(self, user: str, device: int, session: Session) -> None:
        self._keys.archive_session(
            user, device, session.base_key, session.to_bytes(), MAX_OLD_SESSIONS
        )

    # ------------------------------------------------------------ own keys

    async def ensure_keys(self) -> None:
        """Create and upload this device's keys if needed; refill and rotate prekeys."""
        identity, uploaded = await self._run(self._load_identity)
        if not uploaded:
            upload = await self._run(self._new_upload, identity, ONE_TIME_PREKEYS, True)
            await self._api.upload_keys(upload)
            await self._run(self._mark_uploaded)
            return
        status = await self._api.keys_status()
        if status.identity_key is None:  # the server lost our keys (a new store): start over
            upload = await self._run(self._new_upload, identity, ONE_TIME_PREKEYS, True)
            await self._api.upload_keys(upload)
            return
        rotate = await self._run(self._signed_prekey_due)
        missing = ONE_TIME_PREKEYS - status.one_time_prekeys
        if status.one_time_prekeys < LOW_WATER or rotate:
            upload = await self._run(
                self._new_upload,
                identity,
                missing if status.one_time_prekeys < LOW_WATER else 0,
                rotate,
            )
            await self._api.upload_keys(upload)

    def _load_identity(self) -> tuple[IdentityKeyPair, bool]:
        with self._transaction():
            stored = self._keys.identity()
            if stored is None:
                identity = IdentityKeyPair.generate(self._random)
                self._keys.save_identity(identity.to_bytes())
                uploaded = False
            else:
                identity, uploaded = IdentityKeyPair.from_bytes(stored[0]), stored[1]
        self._identity = identity
        return identity, uploaded

    def _new_upload(self, identity: IdentityKeyPair, one_time: int, signed: bool) -> api.KeysUpload:
        """Make (and store, before anything leaves) the private halves of an upload."""
        with self._transaction():
            spk_body = None
            if signed:
                (spk_id,) = self._keys.take_prekey_ids(1)
                now = _now_ms()
                spk = SignedPreKey.generate(identity, spk_id, created_ms=now, random=self._random)
                self._keys.save_signed_prekey(spk_id, spk.to_bytes())
                self._keys.drop_signed_prekeys_before(now - SIGNED_PREKEY_GRACE_MS, keep=spk_id)
                spk_body = api.SignedPrekey(id=spk_id, key=spk.public, signature=spk.signature)
            prekeys = [
                OneTimePreKey.generate(i, random=self._random)
                for i in self._keys.take_prekey_ids(max(0, one_time))
            ]
            self._keys.save_prekeys([(p.key_id, p.to_bytes()) for p in prekeys])
        return api.KeysUpload(
            identity_key=identity.public,
            signed_prekey=spk_body,
            one_time_prekeys=[api.Prekey(id=p.key_id, key=p.public) for p in prekeys],
        )

    def _mark_uploaded(self) -> None:
        self._keys.mark_uploaded()

    def _signed_prekey_due(self) -> bool:
        newest = self._keys.newest_signed_prekey()
        return newest is None or _now_ms() - newest[2] > SIGNED_PREKEY_ROTATION_MS

    def _me(self) -> IdentityKeyPair:
        if self._identity is None:
            stored = self._keys.identity()
            if stored is None:
                raise CryptoError("this device has no identity key yet")
            self._identity = IdentityKeyPair.from_bytes(stored[0])
        return self._identity

    # ------------------------------------------------------------ sending

    async def encrypt(
        self, message_id: str, to: str, content: bytes, forget_at_ms: int | None = None
    ) -> list[DevicePayload]:
        """One payload per recipient device for the outbox entry ``message_id``; its
        content is kept for resend requests until ``forget_at_ms`` (disappearing
        content: no longer than the message itself) or for SENT_KEPT_MS."""
        address = parse_address(to)
        if address is None:
            raise ValueError(f"not an address: {to!r}")
        kind, name = address
        if kind == "user":
            await self._ensure_known(name)
            await self._ensure_known(self.handle)
            if await self._run(self.blocked, name):
                raise UntrustedIdentity(name)
            targets = await self._run(self._targets, [name, self.handle])
            await self._ensure_sessions(targets)
            sealed: list[DevicePayload] = await self._run(
                self._encrypt_pairwise, message_id, to, content, targets, forget_at_ms
            )
            return sealed
        members = [m.handle for m in (await self._api.group(name)).members]
        for member in members:
            await self._ensure_known(member)
        targets = await self._run(self._targets, members)
        need = await self._run(self._needs_sender_key, to, targets)
        await self._ensure_sessions(need)
        sealed = await self._run(
            self._encrypt_group, message_id, to, content, targets, forget_at_ms
        )
        return sealed

    async def sent(self, message_id: str) -> None:
        """The server stored ``message_id``: its sender-key distributions arrived."""
        pending = self._pending.pop(message_id, None)
        if pending is not None:
            await self._run(self._commit_holders, pending)

    def _commit_holders(self, pending: _Pending) -> None:
        with self._transaction():
            stored = self._keys.sender_out(pending.group)
            if stored is None:
                return
            state, holders = stored
            if SenderKeySender.from_bytes(state).key_id == pending.key_id:
                self._keys.save_sender_out(pending.group, state, holders | pending.holders)

    def own_other_devices(self) -> list[int]:
        """Our account's other devices that we know of."""
        return [d for d in self._keys.devices(self.handle) if d != self.device]

    def blocked(self, user: str) -> bool:
        """Whether sends to ``user`` wait for a new verification (keys changed)."""
        verified, changed = self._keys.contact(user)
        return verified is not None and changed

    def forget_pending(self, message_id: str) -> None:
        self._pending.pop(message_id, None)

    def _targets(self, users: Iterable[str]) -> list[DeviceKey]:
        return [
            (user, device)
            for user in dict.fromkeys(users)
            for device in self._keys.devices(user)
            if (user, device) != (self.handle, self.device)
        ]

    def _encrypt_pairwise(
        self,
        message_id: str,
        to: str,
        content: bytes,
        targets: Sequence[DeviceKey],
        forget_at_ms: int | None,
    ) -> list[DevicePayload]:
        inner = env.encode(env.Inner(c=content))
        with self._transaction():
            payloads = [self._seal(user, device, inner) for user, device in targets]
            self._keys.save_sent(message_id, to, content, forget_at_ms, targets)
        return payloads

    def _seal(
        self, user: str, device: int, inner: bytes, group: bytes | None = None
    ) -> DevicePayload:
        session = self._session(user, device)
        if session is None:
            # No keys on the server for this device (it never uploaded any): it
            # cannot read anything, so it gets nothing instead of plaintext.
            log.warning("no session with %s.%d: it cannot read this message", user, device)
            return DevicePayload(user=user, device=device, payload=env.NOTHING_FOR_YOU)
        sealed = session.encrypt(inner)
        self._save_session(user, device, session)
        payload = env.encode(env.Envelope(e=env.ENVELOPE_VERSION, p=sealed, g=group))
        return DevicePayload(user=user, device=device, payload=payload)

    def _needs_sender_key(self, group: str, targets: Sequence[DeviceKey]) -> list[DeviceKey]:
        stored = self._keys.sender_out(group)
        if stored is None or stored[1] - set(targets):
            return list(targets)
        return [t for t in targets if t not in stored[1]]

    def _encrypt_group(
        self,
        message_id: str,
        to: str,
        content: bytes,
        targets: Sequence[DeviceKey],
        forget_at_ms: int | None,
    ) -> list[DevicePayload]:
        with self._transaction():
            stored = self._keys.sender_out(to)
            if stored is None or stored[1] - set(targets):
                # First message, or a device left the group: a new sender key that
                # only the devices still in it get (docs/e2ee.md, "Rotation").
                sender, holders = SenderKeySender.generate(random=self._random), set()
            else:
                sender, holders = SenderKeySender.from_bytes(stored[0]), stored[1]
            distribution = env.encode(env.Inner(k=sender.distribution().to_bytes(), kg=to))
            group_message = sender.encrypt(content)
            self._keys.save_sender_out(to, sender.to_bytes(), holders)
            payloads: list[DevicePayload] = []
            given: set[DeviceKey] = set()
            for user, device in targets:
                if (user, device) in holders:
                    plain = env.Envelope(e=env.ENVELOPE_VERSION, g=group_message)
                    payloads.append(
                        DevicePayload(user=user, device=device, payload=env.encode(plain))
                    )
                else:
                    payload = self._seal(user, device, distribution, group=group_message)
                    if payload.payload != env.NOTHING_FOR_YOU:
                        given.add((user, device))
                    payloads.append(payload)
            self._keys.save_sent(message_id, to, content, forget_at_ms, targets)
        self._pending[message_id] = _Pending(to, sender.key_id, given)
        return payloads

    # ------------------------------------------------------------ devices and sessions

    async def _ensure_known(self, user: str) -> None:
        """First contact: learn every device of ``user`` and start a session with each."""
        if await self._run(self._keys.knows, user):
            return
        async with self._starting:
            if await self._run(self._keys.knows, user):
                return
            bundles = await self._api.key_bundles(user)
            await self._run(self._start_sessions, user, bundles.devices, True)

    async def _ensure_sessions(self, targets: Iterable[DeviceKey]) -> None:
        wanted = list(targets)

        def missing() -> list[DeviceKey]:
            return [t for t in wanted if self._keys.session(*t) is None]

        if not await self._run(missing):
            return
        async with self._starting:
            for user, device in await self._run(missing):
                try:
                    bundles = await self._api.key_bundles(user, device)
                except TaubeApiError as exc:
                    if exc.code == "keys.not_found":
                        continue  # the device has no keys; _seal gives it nothing
                    raise
                await self._run(self._start_sessions, user, bundles.devices, False)

    def _start_sessions(
        self, user: str, bundles: Sequence[api.DeviceBundle], first_contact: bool
    ) -> None:
        identity = self._me()
        changed = False
        with self._transaction():
            self._keys.set_known(user)
            for b in bundles:
                if (user, b.device) == (self.handle, self.device):
                    continue
                bundle = PreKeyBundle(
                    identity_key=b.identity_key,
                    signed_prekey_id=b.signed_prekey.id,
                    signed_prekey=b.signed_prekey.key,
                    signed_prekey_signature=b.signed_prekey.signature,
                    one_time_prekey_id=None if b.one_time_prekey is None else b.one_time_prekey.id,
                    one_time_prekey=None if b.one_time_prekey is None else b.one_time_prekey.key,
                )
                session = Session.initiate(identity, bundle, random=self._random)
                changed |= self._keys.record_device(
                    user, b.device, b.identity_key, first_contact=first_contact
                )
                self._replace_session(user, b.device, session)
        if changed:
            self._on_changed(user)

    async def apply_device_list(self, details: dict[str, Any] | None) -> None:
        """Apply a ``msg.stale_devices`` answer: forget devices that left, meet new ones."""
        details = details or {}
        extra = [_parse(d) for d in details.get("extra", ()) if isinstance(d, str)]
        missing = [_parse(d) for d in details.get("missing", ()) if isinstance(d, str)]
        await self._run(self._forget_devices, extra)
        await self._ensure_sessions(missing)
        # Devices we know but have no session with (keys not found) stay known: the
        # server lists them, so they must get a payload (an empty one).
        await self._run(self._note_devices, missing)

    def _forget_devices(self, devices: Sequence[DeviceKey]) -> None:
        with self._transaction():
            for user, device in devices:
                self._keys.forget_device(user, device)
                self._sessions.pop((user, device), None)

    def _note_devices(self, devices: Sequence[DeviceKey]) -> None:
        with self._transaction():
            for user, device in devices:
                self._keys.note_keyless(user, device)

    # ------------------------------------------------------------ receiving

    def decrypt(
        self, seq: int, sender: str, sender_device: int, conversation: str, payload: bytes
    ) -> Decrypted:
        """Open one inbox message (runs on the profile thread)."""
        stored = self._keys.received(seq)
        if stored is not None:
            again = _received_decoder.decode(stored)
            return Decrypted(again.c, True, original_id=again.o)
        envelope = env.decode_envelope(payload)
        if envelope is None:
            return Decrypted(payload, False)
        if envelope.x:
            return Decrypted(None, True)
        if envelope.r is not None:
            if envelope.rd is None:
                return Decrypted(None, True)
            return Decrypted(None, True, retry_request=(envelope.r, envelope.rd))
        changed: list[str] = []
        try:
            with self._transaction():
                content, original = self._open(
                    envelope, sender, sender_device, conversation, changed
                )
                if content is not None:
                    self._keys.save_received(
                        seq, _received_encoder.encode(_Received(content, original))
                    )
        except DuplicateMessage:
            log.warning("dropped a replayed message from %s.%d", sender, sender_device)
            return Decrypted(None, True)
        except CryptoError as exc:
            log.warning(
                "cannot decrypt a message from %s.%d: %s", sender, sender_device, type(exc).__name__
            )
            return Decrypted(None, True, error=f"{type(exc).__name__}: {exc}")
        return Decrypted(content, True, original_id=original, changed=tuple(changed))

    def _open(
        self,
        envelope: env.Envelope,
        sender: str,
        sender_device: int,
        conversation: str,
        changed: list[str],
    ) -> tuple[bytes | None, str | None]:
        inner: env.Inner | None = None
        if envelope.p is not None:
            plaintext, remote = self._open_pairwise(envelope.p, sender, sender_device)
            if self._keys.record_device(sender, sender_device, remote):
                changed.append(sender)
            inner = env.decode_inner(plaintext)
            if inner is None:
                raise InvalidMessage("the decrypted payload is not an envelope")
            if inner.k is not None and inner.kg == conversation:
                distribution = SenderKeyReceiver.from_distribution(inner.k)
                known = self._keys.sender_in(
                    conversation, sender, sender_device, distribution.key_id
                )
                if known is None:  # never rewind a state we hold (replays)
                    self._keys.save_sender_in(
                        conversation,
                        sender,
                        sender_device,
                        distribution.key_id,
                        distribution.to_bytes(),
                    )
        if envelope.g is not None:
            message = SenderKeyMessage.from_bytes(envelope.g)
            state = self._keys.sender_in(conversation, sender, sender_device, message.key_id)
            if state is None:
                raise InvalidMessage("no sender key for this group message")
            receiver = SenderKeyReceiver.from_bytes(state)
            content = receiver.decrypt(envelope.g)
            self._keys.save_sender_in(
                conversation, sender, sender_device, message.key_id, receiver.to_bytes()
            )
            return content, None
        if inner is None:
            raise InvalidMessage("empty envelope")
        return inner.c, inner.o

    def _open_pairwise(self, data: bytes, sender: str, sender_device: int) -> tuple[bytes, bytes]:
        message = decode_pairwise(data)
        opened = self._open_known(data, message, sender, sender_device)
        if opened is not None:
            session, plaintext = opened
        elif isinstance(message, PreKeyMessage):
            spk_state = self._keys.signed_prekey(message.signed_prekey_id)
            if spk_state is None:
                raise InvalidMessage("the message names a signed prekey this device does not have")
            opk = None
            if message.one_time_prekey_id is not None:
                opk_state = self._keys.prekey(message.one_time_prekey_id)
                if opk_state is None:
                    raise InvalidMessage("the message's one-time prekey was already used")
                opk = OneTimePreKey.from_bytes(opk_state)
            session, plaintext = Session.respond(
                self._me(), message, SignedPreKey.from_bytes(spk_state), opk, random=self._random
            )
            if opk is not None:
                self._keys.delete_prekey(opk.key_id)
        else:
            raise InvalidMessage("no session with this device")
        self._replace_session(sender, sender_device, session)
        return plaintext, session.remote_identity

    def _open_known(
        self, data: bytes, message: PreKeyMessage | RatchetMessage, sender: str, sender_device: int
    ) -> tuple[Session, bytes] | None:
        """Decrypt with the current session or, failing that, a replaced one (newest
        first); None if none of them is the message's (a prekey message starting a new
        session, or no session at all). A failed decrypt changes no session."""

        def sessions() -> Iterator[Session]:  # the replaced ones only read when needed
            current = self._session(sender, sender_device)
            if current is not None:
                yield current
            for state in self._keys.old_sessions(sender, sender_device):
                yield Session.from_bytes(state, random=self._random)

        error: CryptoError | None = None
        for session in sessions():
            if isinstance(message, PreKeyMessage) and not session.matches(message):
                continue
            try:
                return session, session.decrypt(data)
            except DuplicateMessage:
                raise  # this session's message, already read: a replay
            except CryptoError as exc:  # another session's message
                error = error or exc
        if error is not None:
            raise error
        return None

    # ------------------------------------------------------------ resends

    def retry_request(self, message_id: str, sender: str) -> list[DevicePayload]:
        """Payloads asking ``sender`` to send ``message_id`` again to this device. Every
        device of the sender and our other devices get the same unencrypted request;
        only the device that sent the message can answer it."""
        request = env.encode(env.Envelope(e=env.ENVELOPE_VERSION, r=message_id, rd=self.device))
        return [
            DevicePayload(user=u, device=d, payload=request)
            for u, d in self._targets([sender, self.handle])
        ]

    async def resend(
        self, message_id: str, requester: str, requester_device: int
    ) -> tuple[str, list[DevicePayload]] | None:
        """A fresh session with the requesting device and the old content under a new id;
        None if this device did not send ``message_id`` to that device (or forgot it):
        a device added to the account, or a member who joined the group, later must not
        get what was sent before it was there by naming the message's id."""
        found = await self._run(self._keys.sent, message_id)
        if found is None:
            return None
        if (requester, requester_device) not in await self._run(
            self._keys.sent_devices, message_id
        ):
            log.warning(
                "resend of %s refused: %s.%d did not get it",
                message_id, requester, requester_device,
            )  # fmt: skip
            return None
        to, _ = found
        if await self._run(self.blocked, requester):
            return None  # as encrypt: nothing goes to a verified contact whose keys changed
        # A fresh session with the requesting device, which replaces the one it could
        # not read (kept for what it sent in it meanwhile). Made in one step, under the
        # lock: dropping the session first left a moment in which an encrypt running
        # beside this found none and gave that device nothing.
        async with self._starting:
            try:
                bundles = await self._api.key_bundles(requester, requester_device)
            except TaubeApiError as exc:
                if exc.code == "keys.not_found":
                    return None
                raise
            await self._run(self._start_sessions, requester, bundles.devices, False)
        if await self._run(self.blocked, requester):
            return None  # the bundle it sent now is not the key that was verified
        kind, name = parse_address(to) or ("user", "")
        users = (
            [name, self.handle]
            if kind == "user"
            else [m.handle for m in (await self._api.group(name)).members]
        )
        targets = await self._run(self._targets, users)

        def seal() -> list[DevicePayload] | None:
            with self._transaction():
                # Read again: our delete or the content's expiry may have come meanwhile.
                kept = self._keys.sent(message_id)
                if kept is None:
                    return None
                inner = env.encode(env.Inner(c=kept[1], o=message_id))
                return [
                    self._seal(u, d, inner)
                    if (u, d) == (requester, requester_device)
                    else DevicePayload(user=u, device=d, payload=env.NOTHING_FOR_YOU)
                    for u, d in targets
                ]

        payloads = await self._run(seal)
        return None if payloads is None else (to, payloads)

    # ------------------------------------------------------------ trust

    async def safety_number(self, user: str) -> tuple[SafetyNumber, bool]:
        """The safety number with ``user`` from the server's current keys, and whether
        the user verified exactly these keys. Key changes are recorded on the way."""
        mine = await self._api.identities(self.handle)
        theirs = await self._api.identities(user)
        number = safety_number(
            self.handle.encode(),
            [d.identity_key for d in mine.devices],
            user.encode(),
            [d.identity_key for d in theirs.devices],
        )
        verified = await self._run(self._check_keys, user, theirs.devices)
        return number, verified

    def _check_keys(self, user: str, devices: Sequence[api.DeviceIdentity]) -> bool:
        changed = False
        with self._transaction():
            for d in devices:
                changed |= self._keys.record_device(user, d.device, d.identity_key)
            verified, _ = self._keys.contact(user)
        if changed:
            self._on_changed(user)
        return verified is not None and verified == _key_set(devices)

    async def verify(self, user: str) -> SafetyNumber:
        """Mark the keys ``user`` has now as verified (after comparing the number)."""
        number, _ = await self.safety_number(user)
        theirs = await self._api.identities(user)
        await self._run(self._keys.set_verified, user, _key_set(theirs.devices))
        return number

    def forget_sent(self, now_ms: int) -> int:
        """Forget sent content that is due (disappearing) or older than SENT_KEPT_MS;
        how many. Run on the profile's thread."""
        with self._transaction():
            return self._keys.forget_sent(now_ms - SENT_KEPT_MS, now_ms)

    def next_sent_due(self) -> int | None:
        return self._keys.next_sent_due()


def _key_set(devices: Sequence[api.DeviceIdentity]) -> bytes:
    return b"".join(sorted(d.identity_key for d in devices))


def _parse(text: str) -> DeviceKey:
    user, _, device = text.rpartition(".")
    return user, int(device)


def _now_ms() -> int:
    return int(time.time() * 1000)
