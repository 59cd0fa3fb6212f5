"""Pairwise sessions: X3DH followed by the Double Ratchet (Signal specifications).

A :class:`Session` is one device's end of a conversation with one other device.
Header encryption is not used. Invariants the class keeps:

* Decryption is transactional: every change (DH ratchet step, skipped keys, chain
  advance) is computed on a copy and committed only after the MAC verified, so a
  forged, tampered, replayed or out-of-window message leaves the state unchanged.
* At most :data:`MAX_SKIP` message keys are skipped in one chain per message
  (one more raises :class:`TooManySkipped`), and at most :data:`MAX_SKIPPED_TOTAL`
  skipped keys are stored; the oldest is evicted first.
* A message key is used once: a second message with the same key raises
  :class:`DuplicateMessage`.
* Until the initiator has decrypted a reply, everything it sends is a
  :class:`PreKeyMessage` carrying the X3DH header, so the responder can build the
  session from whichever message arrives first.

Message AEAD (the Double Ratchet spec's recommended recipe): keys from
:func:`taube.crypto.kdf.message_keys`, AES-256-CBC/PKCS#7, then
HMAC-SHA256(mac_key, AD || encoded message up to the tag), full 32-byte tag.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Final

from taube.crypto.encoding import MAX_U32, Kind, Reader, Writer
from taube.crypto.errors import (
    CryptoError,
    DuplicateMessage,
    InvalidKey,
    InvalidMessage,
    TooManySkipped,
)
from taube.crypto.kdf import kdf_ck, kdf_rk, message_keys
from taube.crypto.keys import (
    KEY_SIZE,
    IdentityKeyPair,
    KeyPair,
    OneTimePreKey,
    Random,
    SignedPreKey,
)
from taube.crypto.primitives import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    constant_time_equal,
    hmac_sha256,
)
from taube.crypto.x3dh import PreKeyBundle, x3dh_initiate, x3dh_respond

__all__ = [
    "MAC_SIZE",
    "MAX_PREVIOUS_CHAINS",
    "MAX_SKIP",
    "MAX_SKIPPED_TOTAL",
    "PreKeyMessage",
    "RatchetMessage",
    "Session",
    "decode_pairwise",
]

MAX_SKIP: Final = 1000
"""Most message keys one message may make us skip in one receiving chain."""
MAX_SKIPPED_TOTAL: Final = 2000
"""Most skipped message keys a session stores; the oldest is evicted beyond this."""
MAX_PREVIOUS_CHAINS: Final = 32
"""Old receiving ratchet keys remembered to recognise replays from earlier chains."""
MAC_SIZE: Final = 32
MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024
"""Bound on a ciphertext field when decoding, so a length prefix cannot ask for 4 GiB."""


@dataclass(frozen=True, slots=True)
class RatchetMessage:
    """A Double Ratchet message: header (ratchet key, PN, N), ciphertext and MAC."""

    ratchet_key: bytes
    previous_counter: int
    counter: int
    ciphertext: bytes
    mac: bytes

    def authenticated_part(self) -> bytes:
        """The encoding up to (not including) the MAC: the bytes the MAC covers after AD."""
        w = Writer(Kind.RATCHET_MESSAGE).fixed(self.ratchet_key, KEY_SIZE)
        w.u32(self.previous_counter).u32(self.counter).var(self.ciphertext)
        return w.finish()

    def to_bytes(self) -> bytes:
        return self.authenticated_part() + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetMessage:
        r = Reader(data, Kind.RATCHET_MESSAGE)
        key, pn, n = r.fixed(KEY_SIZE), r.u32(), r.u32()
        ciphertext = r.var(MAX_MESSAGE_SIZE)
        mac = r.fixed(MAC_SIZE)
        r.finish()
        return cls(key, pn, n, ciphertext, mac)


@dataclass(frozen=True, slots=True)
class PreKeyMessage:
    """The X3DH header (who, which prekeys) wrapped around a :class:`RatchetMessage`."""

    identity_key: bytes
    base_key: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    message: RatchetMessage

    def to_bytes(self) -> bytes:
        w = Writer(Kind.PREKEY_MESSAGE).fixed(self.identity_key, KEY_SIZE)
        w.fixed(self.base_key, KEY_SIZE).u32(self.signed_prekey_id)
        w.optional_u32(self.one_time_prekey_id).var(self.message.to_bytes())
        return w.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreKeyMessage:
        r = Reader(data, Kind.PREKEY_MESSAGE)
        identity, base_key, spk_id = r.fixed(KEY_SIZE), r.fixed(KEY_SIZE), r.u32()
        opk_id = r.optional_u32()
        inner = r.var(MAX_MESSAGE_SIZE + 1024)
        r.finish()
        return cls(identity, base_key, spk_id, opk_id, RatchetMessage.from_bytes(inner))


def decode_pairwise(data: bytes) -> PreKeyMessage | RatchetMessage:
    """Decode a pairwise ciphertext of either kind (dispatch on the type byte)."""
    if len(data) >= 2 and data[1] == Kind.PREKEY_MESSAGE:
        return PreKeyMessage.from_bytes(data)
    return RatchetMessage.from_bytes(data)


@dataclass(slots=True)
class _Pending:
    """The X3DH header the initiator repeats until it has decrypted a reply."""

    signed_prekey_id: int
    one_time_prekey_id: int | None


@dataclass(slots=True)
class _State:
    initiator: bool
    associated_data: bytes
    base_key: bytes
    root_key: bytes
    dhs: KeyPair
    dhr: bytes
    cks: bytes
    ns: int
    ckr: bytes | None
    nr: int
    pn: int
    pending: _Pending | None
    previous: tuple[bytes, ...] = ()
    skipped: dict[tuple[bytes, int], bytes] = field(default_factory=dict)


class Session:
    """One end of a pairwise Double Ratchet session (build with initiate/respond)."""

    __slots__ = ("_random", "_s")

    def __init__(self, state: _State, *, random: Random = os.urandom) -> None:
        self._s = state
        self._random = random

    # -- construction ------------------------------------------------------------

    @classmethod
    def initiate(
        cls, identity: IdentityKeyPair, bundle: PreKeyBundle, *, random: Random = os.urandom
    ) -> Session:
        """Alice: verify ``bundle`` (InvalidSignature if bad), run X3DH, start the ratchet."""
        x = x3dh_initiate(identity, bundle, KeyPair.generate(random))
        dhs = KeyPair.generate(random)
        root_key, cks = kdf_rk(x.shared_secret, dhs.dh(bundle.signed_prekey))
        state = _State(
            initiator=True,
            associated_data=x.associated_data,
            base_key=x.base_key.public,
            root_key=root_key,
            dhs=dhs,
            dhr=bundle.signed_prekey,
            cks=cks,
            ns=0,
            ckr=None,
            nr=0,
            pn=0,
            pending=_Pending(x.signed_prekey_id, x.one_time_prekey_id),
        )
        return cls(state, random=random)

    @classmethod
    def respond(
        cls,
        identity: IdentityKeyPair,
        message: PreKeyMessage | bytes,
        signed_prekey: SignedPreKey,
        one_time_prekey: OneTimePreKey | None,
        *,
        random: Random = os.urandom,
    ) -> tuple[Session, bytes]:
        """Bob: build the session from a prekey message and decrypt it.

        The caller looks up the prekeys named by ``message.signed_prekey_id`` and
        ``message.one_time_prekey_id`` and deletes the one-time prekey only after this
        returns. Nothing is returned (and no session exists) if decryption fails.
        """
        if not isinstance(message, PreKeyMessage):
            message = PreKeyMessage.from_bytes(message)
        if message.signed_prekey_id != signed_prekey.key_id:
            raise InvalidMessage("prekey message names a different signed prekey")
        opk_id = None if one_time_prekey is None else one_time_prekey.key_id
        if message.one_time_prekey_id != opk_id:
            raise InvalidMessage("prekey message names a different one-time prekey")
        try:
            secret, ad = x3dh_respond(
                identity, signed_prekey, one_time_prekey, message.identity_key, message.base_key
            )
        except InvalidKey as exc:
            raise InvalidMessage(f"bad key in prekey message: {exc}") from None
        state = _State(
            initiator=False,
            associated_data=ad,
            base_key=message.base_key,
            root_key=secret,
            dhs=signed_prekey.key_pair,
            # No receiving chain yet: the first message always triggers a DH ratchet
            # step because its ratchet key differs from this placeholder.
            dhr=bytes(KEY_SIZE),
            cks=bytes(32),
            ns=0,
            ckr=None,
            nr=0,
            pn=0,
            pending=None,
        )
        session = cls(state, random=random)
        plaintext = session._decrypt_message(message.message)
        return session, plaintext

    # -- properties --------------------------------------------------------------

    @property
    def local_identity(self) -> bytes:
        ad = self._s.associated_data
        return ad[:32] if self._s.initiator else ad[32:]

    @property
    def remote_identity(self) -> bytes:
        ad = self._s.associated_data
        return ad[32:] if self._s.initiator else ad[:32]

    @property
    def associated_data(self) -> bytes:
        return self._s.associated_data

    @property
    def base_key(self) -> bytes:
        """The X3DH ephemeral public key that names this session."""
        return self._s.base_key

    @property
    def awaiting_reply(self) -> bool:
        """True while outgoing messages are prekey messages."""
        return self._s.pending is not None

    @property
    def skipped_count(self) -> int:
        return len(self._s.skipped)

    def matches(self, message: PreKeyMessage) -> bool:
        """Whether a prekey message belongs to this session (same X3DH run)."""
        return constant_time_equal(message.base_key, self._s.base_key) and constant_time_equal(
            message.identity_key, self.remote_identity
        )

    # -- messages ----------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one message; returns the encoded (prekey or ratchet) message."""
        s = self._s
        if s.ns >= MAX_U32:
            raise CryptoError("sending chain exhausted; start a new session")
        seed, s.cks = kdf_ck(s.cks)
        keys = message_keys(seed)
        ciphertext = aes_cbc_encrypt(keys.cipher_key, keys.iv, plaintext)
        unsigned = RatchetMessage(s.dhs.public, s.pn, s.ns, ciphertext, b"")
        s.ns += 1
        mac = hmac_sha256(keys.mac_key, s.associated_data + unsigned.authenticated_part())
        message = dataclasses.replace(unsigned, mac=mac)
        if s.pending is None:
            return message.to_bytes()
        return PreKeyMessage(
            self.local_identity,
            s.base_key,
            s.pending.signed_prekey_id,
            s.pending.one_time_prekey_id,
            message,
        ).to_bytes()

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt a ratchet or prekey message of this session.

        Raises DecodeError/InvalidMessage (garbage, bad MAC, other session),
        DuplicateMessage (key already used or discarded) or TooManySkipped; in every
        case the session is unchanged.
        """
        message = decode_pairwise(data)
        if isinstance(message, PreKeyMessage):
            if not self.matches(message):
                raise InvalidMessage("prekey message of a different session")
            return self._decrypt_message(message.message)
        return self._decrypt_message(message)

    def _open(self, seed: bytes, message: RatchetMessage) -> bytes:
        keys = message_keys(seed)
        expected = hmac_sha256(keys.mac_key, self._s.associated_data + message.authenticated_part())
        if not constant_time_equal(expected, message.mac):
            raise InvalidMessage("message authentication failed")
        return aes_cbc_decrypt(keys.cipher_key, keys.iv, message.ciphertext)

    def _decrypt_message(self, message: RatchetMessage) -> bytes:
        try:
            return self._decrypt_transaction(message)
        except InvalidKey as exc:
            raise InvalidMessage(f"bad ratchet key: {exc}") from None

    def _decrypt_transaction(self, message: RatchetMessage) -> bytes:
        s = self._s
        slot = (message.ratchet_key, message.counter)
        seed = s.skipped.get(slot)
        if seed is not None:
            plaintext = self._open(seed, message)
            del s.skipped[slot]
            s.pending = None
            return plaintext

        new = copy.copy(s)  # shallow: ``skipped`` is shared but only touched on commit
        fresh: list[tuple[tuple[bytes, int], bytes]] = []
        retired: bytes | None = None
        if new.ckr is not None and constant_time_equal(message.ratchet_key, new.dhr):
            if message.counter < new.nr:
                raise DuplicateMessage("message key already used or discarded")
        elif message.ratchet_key in new.previous:
            raise DuplicateMessage("message key already used or discarded")
        else:
            if new.ckr is not None:
                _skip(new, message.previous_counter, fresh)
                retired = new.dhr
            new.pn, new.ns, new.nr, new.dhr = new.ns, 0, 0, message.ratchet_key
            new.root_key, new.ckr = kdf_rk(new.root_key, new.dhs.dh(new.dhr))
            new.dhs = KeyPair.generate(self._random)
            new.root_key, new.cks = kdf_rk(new.root_key, new.dhs.dh(new.dhr))
        _skip(new, message.counter, fresh)
        assert new.ckr is not None
        seed, new.ckr = kdf_ck(new.ckr)
        new.nr += 1
        plaintext = self._open(seed, message)  # raises before anything is committed
        # Commit: the MAC verified, so the message is genuine.
        new.pending = None
        if retired is not None:
            new.previous = (*new.previous, retired)[-MAX_PREVIOUS_CHAINS:]
        for slot_, seed_ in fresh:
            new.skipped[slot_] = seed_
        while len(new.skipped) > MAX_SKIPPED_TOTAL:
            del new.skipped[next(iter(new.skipped))]
        self._s = new
        return plaintext

    # -- persistence -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        s = self._s
        w = Writer(Kind.SESSION).u8(1 if s.initiator else 0)
        w.fixed(s.associated_data, 64).fixed(s.base_key, KEY_SIZE)
        w.fixed(s.root_key, 32).fixed(s.dhs.private, KEY_SIZE).fixed(s.dhr, KEY_SIZE)
        w.fixed(s.cks, 32).u32(s.ns).optional(s.ckr, 32).u32(s.nr).u32(s.pn)
        w.u8(0 if s.pending is None else 1)
        w.u32(0 if s.pending is None else s.pending.signed_prekey_id)
        w.optional_u32(None if s.pending is None else s.pending.one_time_prekey_id)
        w.u32(len(s.previous))
        for key in s.previous:
            w.fixed(key, KEY_SIZE)
        w.u32(len(s.skipped))
        for (key, n), seed in s.skipped.items():
            w.fixed(key, KEY_SIZE).u32(n).fixed(seed, 32)
        return w.finish()

    @classmethod
    def from_bytes(cls, data: bytes, *, random: Random = os.urandom) -> Session:
        r = Reader(data, Kind.SESSION)
        initiator = r.flag()
        ad, base_key, root_key = r.fixed(64), r.fixed(KEY_SIZE), r.fixed(32)
        dhs, dhr = KeyPair.from_private_bytes(r.fixed(KEY_SIZE)), r.fixed(KEY_SIZE)
        cks, ns, ckr, nr, pn = r.fixed(32), r.u32(), r.optional(32), r.u32(), r.u32()
        has_pending, spk_id, opk_id = r.flag(), r.u32(), r.optional_u32()
        if not has_pending and (spk_id or opk_id is not None):
            raise r.fail("absent prekey header must be zero-filled")
        pending = _Pending(spk_id, opk_id) if has_pending else None
        count = r.u32()
        if count > MAX_PREVIOUS_CHAINS:
            raise r.fail("too many previous chains")
        previous = tuple(r.fixed(KEY_SIZE) for _ in range(count))
        count = r.u32()
        if count > MAX_SKIPPED_TOTAL:
            raise r.fail("too many skipped keys")
        skipped: dict[tuple[bytes, int], bytes] = {}
        for _ in range(count):
            key, n, seed = r.fixed(KEY_SIZE), r.u32(), r.fixed(32)
            skipped[(key, n)] = seed
        r.finish()
        if len(skipped) != count:
            raise r.fail("duplicate skipped key")
        state = _State(
            initiator,
            ad,
            base_key,
            root_key,
            dhs,
            dhr,
            cks,
            ns,
            ckr,
            nr,
            pn,
            pending,
            previous,
            skipped,
        )
        return cls(state, random=random)


def _skip(state: _State, until: int, out: list[tuple[tuple[bytes, int], bytes]]) -> None:
    """Derive and collect the keys of messages ``state.nr .. until-1`` of the receiving chain."""
    if state.ckr is None:
        return
    if until - state.nr > MAX_SKIP:
        raise TooManySkipped(
            f"message needs {until - state.nr} skipped keys, more than MAX_SKIP={MAX_SKIP}"
        )
    ckr, nr = state.ckr, state.nr
    while nr < until:
        seed, ckr = kdf_ck(ckr)
        out.append(((state.dhr, nr), seed))
        nr += 1
    state.ckr, state.nr = ckr, nr
