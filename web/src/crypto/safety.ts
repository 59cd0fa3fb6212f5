/**
 * Safety numbers: Signal's numeric fingerprint over all of an account's devices
 * (docs/e2ee.md section 10; mirror of taube/crypto/safety.py).
 */

import { compareBytes, concat, utf8 } from "./bytes.js";
import { Kind, Reader, Writer } from "./encoding.js";
import { CryptoError } from "./errors.js";
import { constantTimeEqual, sha512 } from "./primitives.js";

export const ITERATIONS = 5200;
const VERSION_PREFIX = Uint8Array.of(0x00, 0x00);

function asBytes(id: string | Uint8Array): Uint8Array {
  return typeof id === "string" ? utf8(id) : id;
}

/** An account's fingerprint key: its device keys, sorted bytewise, concatenated. */
export function accountKey(identityKeys: readonly Uint8Array[]): Uint8Array {
  if (identityKeys.length === 0) throw new CryptoError("an account has at least one device identity key");
  return concat(...[...identityKeys].sort(compareBytes));
}

/** The 64-byte iterated hash of one side (libsignal's get_fingerprint). */
export function fingerprintHalf(key: Uint8Array, stableId: string | Uint8Array, iterations = ITERATIONS): Uint8Array {
  let h = sha512(concat(VERSION_PREFIX, key, asBytes(stableId), key));
  const buf = new Uint8Array(64 + key.length);
  buf.set(key, 64);
  for (let i = 1; i < iterations; i++) {
    buf.set(h, 0);
    h = sha512(buf);
  }
  return h;
}

function digitsOf(h: Uint8Array): string {
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    // 5 bytes = 40 bits: exact in a double.
    const n = h[i]! * 2 ** 32 + ((h[i + 1]! << 24) >>> 0) + (h[i + 2]! << 16) + (h[i + 3]! << 8) + h[i + 4]!;
    out += String(n % 100000).padStart(5, "0");
  }
  return out;
}

/** One person's view of the safety number with one contact. */
export class SafetyNumber {
  constructor(
    readonly local: Uint8Array,
    readonly remote: Uint8Array,
  ) {}

  /** 60 digits, identical on both sides. */
  get digits(): string {
    const a = digitsOf(this.local);
    const b = digitsOf(this.remote);
    return a < b ? a + b : b + a;
  }

  /** 12 groups of 5 digits separated by spaces (show as 3 rows of 4). */
  formatted(): string {
    const d = this.digits;
    const groups: string[] = [];
    for (let i = 0; i < 60; i += 5) groups.push(d.slice(i, i + 5));
    return groups.join(" ");
  }

  /** The QR-code payload this side shows. */
  get scannable(): Uint8Array {
    return new Writer(Kind.SCANNABLE_FINGERPRINT, 66)
      .fixed(this.local.slice(0, 32), 32)
      .fixed(this.remote.slice(0, 32), 32)
      .finish();
  }

  /** Whether a payload scanned from the contact's screen agrees with ours (DecodeError if malformed). */
  matchesScanned(payload: Uint8Array): boolean {
    const r = new Reader(payload, Kind.SCANNABLE_FINGERPRINT);
    const theirLocal = r.fixed(32);
    const theirRemote = r.fixed(32);
    r.finish();
    const sameA = constantTimeEqual(theirLocal, this.remote.slice(0, 32));
    const sameB = constantTimeEqual(theirRemote, this.local.slice(0, 32));
    return sameA && sameB;
  }
}

/** The safety number between two accounts, from stable ids (handles; strings are UTF-8 encoded). */
export function safetyNumber(
  localId: string | Uint8Array,
  localKeys: readonly Uint8Array[],
  remoteId: string | Uint8Array,
  remoteKeys: readonly Uint8Array[],
): SafetyNumber {
  return new SafetyNumber(
    fingerprintHalf(accountKey(localKeys), localId),
    fingerprintHalf(accountKey(remoteKeys), remoteId),
  );
}
