/**
 * Key types: the Ed25519 identity key, X25519 key pairs, signed and one-time
 * prekeys (docs/e2ee.md section 2; mirror of taube/crypto/keys.py).
 *
 * A device has ONE identity key, an Ed25519 key; it takes part in Diffie-Hellman
 * through its X25519 form (private: SHA-512(seed)[0:32], clamped by X25519;
 * public: the birational map of the Ed25519 public key). Objects are immutable
 * and round-trip through toBytes/fromBytes; randomness is injectable.
 */

import { concat, hex, u32be, utf8 } from "./bytes.js";
import { Kind, Reader, Writer } from "./encoding.js";
import { CryptoError } from "./errors.js";
import {
  type Random,
  defaultRandom,
  draw,
  ed25519Public,
  ed25519PublicToX25519,
  ed25519SeedToX25519Private,
  ed25519Sign,
  ed25519Verify,
  x25519,
  x25519Public,
} from "./primitives.js";

export const KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const SIGNED_PREKEY_CONTEXT = utf8("Taube signed prekey v1");

export { ed25519PublicToX25519, ed25519SeedToX25519Private };

/** An X25519 key pair (ephemeral, ratchet, signed and one-time prekeys). */
export class KeyPair {
  readonly private: Uint8Array;
  readonly public: Uint8Array;

  private constructor(privateKey: Uint8Array, publicKey: Uint8Array) {
    this.private = privateKey;
    this.public = publicKey;
  }

  static fromPrivateBytes(privateKey: Uint8Array): KeyPair {
    const priv = Uint8Array.from(privateKey);
    return new KeyPair(priv, x25519Public(priv));
  }

  static generate(random: Random = defaultRandom): KeyPair {
    return KeyPair.fromPrivateBytes(draw(random, KEY_SIZE));
  }

  dh(theirPublic: Uint8Array): Uint8Array {
    return x25519(this.private, theirPublic);
  }

  toString(): string {
    return `KeyPair(public=${hex(this.public)})`;
  }
}

/** A device's long-term Ed25519 identity key and its derived X25519 form. */
export class IdentityKeyPair {
  readonly seed: Uint8Array;
  /** The Ed25519 public key: this device's identity on the wire. */
  readonly public: Uint8Array;
  /** The X25519 private key, SHA-512(seed)[0:32]. */
  readonly dhPrivate: Uint8Array;
  /** The X25519 public key (same point as the birational map of `public`). */
  readonly dhPublic: Uint8Array;

  private constructor(seed: Uint8Array, publicKey: Uint8Array, dhPrivate: Uint8Array, dhPublic: Uint8Array) {
    this.seed = seed;
    this.public = publicKey;
    this.dhPrivate = dhPrivate;
    this.dhPublic = dhPublic;
  }

  static fromSeed(seed: Uint8Array): IdentityKeyPair {
    const s = Uint8Array.from(seed);
    const dhPrivate = ed25519SeedToX25519Private(s);
    return new IdentityKeyPair(s, ed25519Public(s), dhPrivate, x25519Public(dhPrivate));
  }

  static generate(random: Random = defaultRandom): IdentityKeyPair {
    return IdentityKeyPair.fromSeed(draw(random, KEY_SIZE));
  }

  sign(message: Uint8Array): Uint8Array {
    return ed25519Sign(this.seed, message);
  }

  /** DH between this identity's X25519 form and an X25519 public key. */
  dh(theirX25519Public: Uint8Array): Uint8Array {
    return x25519(this.dhPrivate, theirX25519Public);
  }

  toBytes(): Uint8Array {
    return new Writer(Kind.IDENTITY_KEY_PAIR).fixed(this.seed, KEY_SIZE).finish();
  }

  static fromBytes(data: Uint8Array): IdentityKeyPair {
    const r = new Reader(data, Kind.IDENTITY_KEY_PAIR);
    const seed = r.fixed(KEY_SIZE);
    r.finish();
    return IdentityKeyPair.fromSeed(seed);
  }

  toString(): string {
    return `IdentityKeyPair(public=${hex(this.public)})`;
  }
}

/** The bytes an identity key signs: "Taube signed prekey v1" || u32 keyId || public. */
export function signedPrekeyMessage(keyId: number, publicKey: Uint8Array): Uint8Array {
  return concat(SIGNED_PREKEY_CONTEXT, u32be(keyId), publicKey);
}

/** Throw InvalidSignature unless `signature` vouches for the signed prekey. */
export function verifySignedPrekey(
  identity: Uint8Array,
  keyId: number,
  publicKey: Uint8Array,
  signature: Uint8Array,
): void {
  ed25519Verify(identity, signedPrekeyMessage(keyId, publicKey), signature);
}

function checkU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new CryptoError(`${what} must be a u32`);
}

/** A medium-term X25519 prekey signed by the identity key. */
export class SignedPreKey {
  private constructor(
    readonly keyId: number,
    readonly keyPair: KeyPair,
    readonly signature: Uint8Array,
    readonly createdMs: number,
  ) {}

  static create(
    identity: IdentityKeyPair,
    keyId: number,
    keyPair: KeyPair,
    opts: { createdMs?: number } = {},
  ): SignedPreKey {
    checkU32(keyId, "signed prekey id");
    const createdMs = opts.createdMs ?? 0;
    if (!Number.isSafeInteger(createdMs) || createdMs < 0) throw new CryptoError("createdMs out of range");
    const signature = identity.sign(signedPrekeyMessage(keyId, keyPair.public));
    return new SignedPreKey(keyId, keyPair, signature, createdMs);
  }

  static generate(
    identity: IdentityKeyPair,
    keyId: number,
    opts: { createdMs?: number; random?: Random } = {},
  ): SignedPreKey {
    const kp = KeyPair.generate(opts.random ?? defaultRandom);
    return SignedPreKey.create(identity, keyId, kp, { createdMs: opts.createdMs ?? 0 });
  }

  get public(): Uint8Array {
    return this.keyPair.public;
  }

  toBytes(): Uint8Array {
    const high = Math.floor(this.createdMs / 0x100000000);
    const low = this.createdMs % 0x100000000;
    return new Writer(Kind.SIGNED_PREKEY, 114)
      .u32(this.keyId)
      .fixed(this.keyPair.private, KEY_SIZE)
      .fixed(this.signature, SIGNATURE_SIZE)
      .u32(high)
      .u32(low)
      .finish();
  }

  static fromBytes(data: Uint8Array): SignedPreKey {
    const r = new Reader(data, Kind.SIGNED_PREKEY);
    const keyId = r.u32();
    const priv = r.fixed(KEY_SIZE);
    const signature = r.fixed(SIGNATURE_SIZE);
    const high = r.u32();
    const low = r.u32();
    r.finish();
    const createdMs = high * 0x100000000 + low;
    if (!Number.isSafeInteger(createdMs)) throw r.fail("created ms beyond 2^53");
    return new SignedPreKey(keyId, KeyPair.fromPrivateBytes(priv), signature, createdMs);
  }

  toString(): string {
    return `SignedPreKey(keyId=${this.keyId}, public=${hex(this.public)})`;
  }
}

/** A single-use X25519 prekey; the SDK deletes it once a session used it. */
export class OneTimePreKey {
  private constructor(
    readonly keyId: number,
    readonly keyPair: KeyPair,
  ) {}

  static create(keyId: number, keyPair: KeyPair): OneTimePreKey {
    checkU32(keyId, "one-time prekey id");
    return new OneTimePreKey(keyId, keyPair);
  }

  static generate(keyId: number, random: Random = defaultRandom): OneTimePreKey {
    return OneTimePreKey.create(keyId, KeyPair.generate(random));
  }

  get public(): Uint8Array {
    return this.keyPair.public;
  }

  toBytes(): Uint8Array {
    return new Writer(Kind.ONE_TIME_PREKEY, 38).u32(this.keyId).fixed(this.keyPair.private, KEY_SIZE).finish();
  }

  static fromBytes(data: Uint8Array): OneTimePreKey {
    const r = new Reader(data, Kind.ONE_TIME_PREKEY);
    const keyId = r.u32();
    const priv = r.fixed(KEY_SIZE);
    r.finish();
    return new OneTimePreKey(keyId, KeyPair.fromPrivateBytes(priv));
  }

  toString(): string {
    return `OneTimePreKey(keyId=${this.keyId}, public=${hex(this.public)})`;
  }
}
