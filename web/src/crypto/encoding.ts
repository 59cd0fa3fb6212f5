/**
 * Canonical byte encoding shared by every wire structure and persisted state
 * (docs/e2ee.md section 5; mirror of taube/crypto/encoding.py).
 *
 * version byte 0x01, type byte; integers unsigned big-endian; fixed-size fields
 * without length; variable parts with a u32 length prefix; optional fixed fields
 * as a u8 flag (0/1) plus the field, zero-filled when absent. Decoding is strict.
 */

import { CryptoError, DecodeError } from "./errors.js";
import { isZero } from "./bytes.js";

export const VERSION = 1;
export const MAX_U32 = 0xffffffff;

export const Kind = {
  RATCHET_MESSAGE: 0x01,
  PREKEY_MESSAGE: 0x02,
  SENDER_KEY_MESSAGE: 0x03,
  SENDER_KEY_DISTRIBUTION: 0x04,
  PREKEY_BUNDLE: 0x05,
  ATTACHMENT: 0x06,
  SCANNABLE_FINGERPRINT: 0x07,
  IDENTITY_KEY_PAIR: 0x40,
  SIGNED_PREKEY: 0x41,
  ONE_TIME_PREKEY: 0x42,
  SESSION: 0x43,
  SENDER_KEY_SENDER: 0x44,
  SENDER_KEY_RECEIVER: 0x45,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

const KIND_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Kind).map(([name, value]) => [value, name.toLowerCase()]),
);

function checkU32(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new CryptoError(`u32 out of range: ${value}`);
  }
}

/** Appends fields in order; `finish()` returns the bytes. */
export class Writer {
  private buf: Uint8Array;
  private len = 0;

  constructor(kind: Kind, sizeHint = 64) {
    this.buf = new Uint8Array(Math.max(sizeHint, 16));
    this.push(Uint8Array.of(VERSION, kind));
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private push(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  u8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new CryptoError(`u8 out of range: ${value}`);
    }
    this.reserve(1);
    this.buf[this.len++] = value;
    return this;
  }

  u32(value: number): this {
    checkU32(value);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.len, value, false);
    this.len += 4;
    return this;
  }

  fixed(value: Uint8Array, size: number): this {
    if (!(value instanceof Uint8Array) || value.length !== size) {
      throw new CryptoError(`expected ${size} bytes, got ${value?.length}`);
    }
    this.push(value);
    return this;
  }

  var(value: Uint8Array): this {
    this.u32(value.length);
    this.push(value);
    return this;
  }

  optional(value: Uint8Array | null | undefined, size: number): this {
    if (value == null) return this.u8(0).fixed(new Uint8Array(size), size);
    return this.u8(1).fixed(value, size);
  }

  optionalU32(value: number | null | undefined): this {
    return value == null ? this.u8(0).u32(0) : this.u8(1).u32(value);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads fields in order, throwing DecodeError on any deviation. */
export class Reader {
  private readonly data: Uint8Array;
  private readonly view: DataView;
  private pos = 0;
  private readonly what: string;

  constructor(data: Uint8Array, kind: Kind) {
    this.what = KIND_NAMES[kind] ?? `type 0x${kind.toString(16)}`;
    if (!(data instanceof Uint8Array)) {
      throw new DecodeError(`${this.what}: expected bytes, got ${typeof data}`);
    }
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const version = this.u8();
    const found = this.u8();
    if (version !== VERSION) throw new DecodeError(`${this.what}: unsupported version ${version}`);
    if (found !== kind) {
      throw new DecodeError(`${this.what}: wrong type byte 0x${found.toString(16).padStart(2, "0")}`);
    }
  }

  get position(): number {
    return this.pos;
  }

  private take(size: number): number {
    const start = this.pos;
    if (start + size > this.data.length) throw new DecodeError(`${this.what}: truncated at offset ${start}`);
    this.pos = start + size;
    return start;
  }

  u8(): number {
    return this.data[this.take(1)]!;
  }

  u32(): number {
    return this.view.getUint32(this.take(4), false);
  }

  flag(): boolean {
    const value = this.u8();
    if (value > 1) throw new DecodeError(`${this.what}: flag must be 0 or 1, got ${value}`);
    return value === 1;
  }

  /** A copy of the next `size` bytes. */
  fixed(size: number): Uint8Array {
    const start = this.take(size);
    return this.data.slice(start, start + size);
  }

  var(maxSize = MAX_U32): Uint8Array {
    const size = this.u32();
    if (size > maxSize) throw new DecodeError(`${this.what}: field of ${size} bytes exceeds ${maxSize}`);
    return this.fixed(size);
  }

  optional(size: number): Uint8Array | null {
    const present = this.flag();
    const value = this.fixed(size);
    if (present) return value;
    if (!isZero(value)) throw new DecodeError(`${this.what}: absent field must be zero-filled`);
    return null;
  }

  optionalU32(): number | null {
    const present = this.flag();
    const value = this.u32();
    if (present) return value;
    if (value !== 0) throw new DecodeError(`${this.what}: absent field must be zero-filled`);
    return null;
  }

  finish(): void {
    if (this.pos !== this.data.length) {
      throw new DecodeError(`${this.what}: ${this.data.length - this.pos} trailing bytes`);
    }
  }

  fail(reason: string): DecodeError {
    return new DecodeError(`${this.what}: ${reason}`);
  }
}
