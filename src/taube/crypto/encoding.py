"""Canonical byte encoding shared by every wire structure and persisted state.

Rules (docs/e2ee.md, "Encodings"): every structure starts with a version byte
(:data:`VERSION`) and a type byte (:class:`Kind`); integers are unsigned big-endian;
fixed-size fields have no length; variable parts are prefixed by a ``u32`` length;
optional fixed fields are a ``u8`` flag (0 or 1) followed by the field, zero-filled
when absent. Decoding is strict: short input, trailing bytes, an unknown version or
type, a flag other than 0/1 or non-zero filler raise :class:`DecodeError`. So there
is exactly one encoding per value, and a TypeScript decoder can be written by hand.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

from taube.crypto.errors import DecodeError

VERSION: Final = 1
MAX_U32: Final = 0xFFFFFFFF

_U32 = struct.Struct(">I")


class Kind(enum.IntEnum):
    """The type byte, second byte of every encoding."""

    RATCHET_MESSAGE = 0x01
    PREKEY_MESSAGE = 0x02
    SENDER_KEY_MESSAGE = 0x03
    SENDER_KEY_DISTRIBUTION = 0x04
    PREKEY_BUNDLE = 0x05
    ATTACHMENT = 0x06
    SCANNABLE_FINGERPRINT = 0x07
    # Persisted state (never on the wire, but just as strict).
    IDENTITY_KEY_PAIR = 0x40
    SIGNED_PREKEY = 0x41
    ONE_TIME_PREKEY = 0x42
    SESSION = 0x43
    SENDER_KEY_SENDER = 0x44
    SENDER_KEY_RECEIVER = 0x45


class Writer:
    """Appends fields in order; ``finish()`` returns the bytes."""

    __slots__ = ("_parts",)

    def __init__(self, kind: Kind) -> None:
        self._parts: list[bytes] = [bytes((VERSION, kind))]

    def u8(self, value: int) -> Writer:
        self._parts.append(bytes((value,)))
        return self

    def u32(self, value: int) -> Writer:
        if not 0 <= value <= MAX_U32:
            raise ValueError(f"u32 out of range: {value}")
        self._parts.append(_U32.pack(value))
        return self

    def fixed(self, value: bytes, size: int) -> Writer:
        if len(value) != size:
            raise ValueError(f"expected {size} bytes, got {len(value)}")
        self._parts.append(value)
        return self

    def var(self, value: bytes) -> Writer:
        self.u32(len(value))
        self._parts.append(value)
        return self

    def optional(self, value: bytes | None, size: int) -> Writer:
        if value is None:
            return self.u8(0).fixed(bytes(size), size)
        return self.u8(1).fixed(value, size)

    def optional_u32(self, value: int | None) -> Writer:
        return self.u8(0).u32(0) if value is None else self.u8(1).u32(value)

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads fields in order, raising :class:`DecodeError` on any deviation."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, kind: Kind) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"{kind.name.lower()}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self._what = kind.name.lower()
        version, found = self.u8(), self.u8()
        if version != VERSION:
            raise DecodeError(f"{self._what}: unsupported version {version}")
        if found != kind:
            raise DecodeError(f"{self._what}: wrong type byte 0x{found:02x}")

    @property
    def position(self) -> int:
        return self._pos

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise DecodeError(f"{self._what}: truncated at offset {self._pos}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError(f"{self._what}: flag must be 0 or 1, got {value}")
        return value == 1

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def var(self, max_size: int = MAX_U32) -> bytes:
        size = self.u32()
        if size > max_size:
            raise DecodeError(f"{self._what}: field of {size} bytes exceeds {max_size}")
        return self._take(size)

    def optional(self, size: int) -> bytes | None:
        present = self.flag()
        value = self._take(size)
        if present:
            return value
        if any(value):
            raise DecodeError(f"{self._what}: absent field must be zero-filled")
        return None

    def optional_u32(self) -> int | None:
        present = self.flag()
        value = self.u32()
        if present:
            return value
        if value:
            raise DecodeError(f"{self._what}: absent field must be zero-filled")
        return None

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{self._what}: {len(self._data) - self._pos} trailing bytes")

    def fail(self, reason: str) -> DecodeError:
        return DecodeError(f"{self._what}: {reason}")
