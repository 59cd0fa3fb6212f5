"""Taube's end-to-end encryption core: pure functions and classes, no I/O.

X3DH and the Double Ratchet for pairwise sessions, Sender Keys for groups,
attachment encryption and safety numbers, all on pyca ``cryptography``. The
specification, byte for byte, is docs/e2ee.md; tests/vectors/ holds the
known-answer vectors a second implementation must reproduce.

Typical use (the SDK persists every object with ``to_bytes``/``from_bytes``)::

    alice = Session.initiate(alice_identity, bob_bundle)
    wire = alice.encrypt(b"hi")
    bob, plaintext = Session.respond(bob_identity, wire, bob_spk, bob_opk)
"""

from taube.crypto.attachments import EncryptedAttachment, decrypt_attachment, encrypt_attachment
from taube.crypto.errors import (
    CryptoError,
    DecodeError,
    DuplicateMessage,
    InvalidKey,
    InvalidMessage,
    InvalidSignature,
    TooManySkipped,
    UnknownSenderKey,
)
from taube.crypto.keys import IdentityKeyPair, KeyPair, OneTimePreKey, Random, SignedPreKey
from taube.crypto.ratchet import (
    MAX_SKIP,
    MAX_SKIPPED_TOTAL,
    PreKeyMessage,
    RatchetMessage,
    Session,
    decode_pairwise,
)
from taube.crypto.safety import SafetyNumber, safety_number
from taube.crypto.sender_keys import (
    SenderKeyDistribution,
    SenderKeyMessage,
    SenderKeyReceiver,
    SenderKeySender,
)
from taube.crypto.x3dh import PreKeyBundle

__all__ = [
    "MAX_SKIP",
    "MAX_SKIPPED_TOTAL",
    "CryptoError",
    "DecodeError",
    "DuplicateMessage",
    "EncryptedAttachment",
    "IdentityKeyPair",
    "InvalidKey",
    "InvalidMessage",
    "InvalidSignature",
    "KeyPair",
    "OneTimePreKey",
    "PreKeyBundle",
    "PreKeyMessage",
    "Random",
    "RatchetMessage",
    "SafetyNumber",
    "SenderKeyDistribution",
    "SenderKeyMessage",
    "SenderKeyReceiver",
    "SenderKeySender",
    "Session",
    "SignedPreKey",
    "TooManySkipped",
    "UnknownSenderKey",
    "decode_pairwise",
    "decrypt_attachment",
    "encrypt_attachment",
    "safety_number",
]
