/**
 * Thin wrappers over noble (curves, hashes, ciphers): the only place primitives
 * are called (mirror of taube/crypto/primitives.py). noble's exceptions become
 * the typed errors of errors.ts here. Everything is synchronous and behaves the
 * same in Node and browsers.
 */

import { ed25519, x25519 as nobleX25519 } from "@noble/curves/ed25519.js";
import { sha256 as nobleSha256, sha512 as nobleSha512 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { cbc, gcm } from "@noble/ciphers/aes.js";
import { equalBytes } from "@noble/ciphers/utils.js";

import { InvalidKey, InvalidMessage, InvalidSignature, CryptoError } from "./errors.js";
import { isZero } from "./bytes.js";

/** Source of random bytes: `random(n)` returns `n` fresh bytes. */
export type Random = (n: number) => Uint8Array;

/** The default random source: the platform CSPRNG (crypto.getRandomValues). */
export const defaultRandom: Random = (n) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
};

/** Draw `n` bytes from `random` and check it returned exactly that many. */
export function draw(random: Random, n: number): Uint8Array {
  const out = random(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw new CryptoError(`random source returned ${out?.length} bytes, expected ${n}`);
  }
  return Uint8Array.from(out);
}

/** HKDF salt where the specifications say "zero-filled, hash length". */
export const ZERO_SALT = new Uint8Array(32);

/** RFC 5869 HKDF-SHA256 (extract then expand). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length <= 0 || length > 255 * 32) {
    throw new CryptoError(`HKDF-SHA256 output length ${length} out of range`);
  }
  return hkdf(nobleSha256, ikm, salt, info, length);
}

/** HMAC-SHA256, full 32-byte tag. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(nobleSha256, key, data);
}

/** Tag and fingerprint comparison that does not leak where the inputs differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a, b);
}

export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

/** Incremental SHA-256 (for attachment blobs). */
export function sha256Hasher(): { update(b: Uint8Array): void; digest(): Uint8Array } {
  const h = nobleSha256.create();
  return {
    update(b: Uint8Array) {
      h.update(b);
    },
    digest() {
      return h.digest();
    },
  };
}

export function sha512(data: Uint8Array): Uint8Array {
  return nobleSha512(data);
}

/** AES-CBC with PKCS#7 padding (key of 16, 24 or 32 bytes; the core uses 32). */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return cbc(key, iv).encrypt(plaintext);
}

/**
 * Inverse of {@link aesCbcEncrypt}; a bad length or padding throws InvalidMessage.
 * Callers authenticate the ciphertext first, so padding errors are never an oracle.
 */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) {
    throw new InvalidMessage("AES-CBC ciphertext length is not a positive multiple of 16");
  }
  try {
    return cbc(key, iv).decrypt(ciphertext);
  } catch {
    throw new InvalidMessage("bad PKCS#7 padding");
  }
}

/** AES-GCM with a 16-byte tag appended to the ciphertext. */
export function aesGcmEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return gcm(key, nonce, aad).encrypt(plaintext);
}

export function aesGcmDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (ciphertext.length < 16) throw new InvalidMessage("AES-GCM ciphertext shorter than its tag");
  try {
    return gcm(key, nonce, aad).decrypt(ciphertext);
  } catch {
    throw new InvalidMessage("AES-GCM tag does not verify");
  }
}

function checkLength(b: Uint8Array, size: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== size) {
    throw new InvalidKey(`${what} must be ${size} bytes`);
  }
}

/** Public key of a 32-byte X25519 private key (the scalar is clamped). */
export function x25519Public(privateKey: Uint8Array): Uint8Array {
  checkLength(privateKey, 32, "X25519 private key");
  return nobleX25519.getPublicKey(privateKey);
}

/** X25519 shared secret; a low-order peer key (all-zero result) throws InvalidKey. */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkLength(privateKey, 32, "X25519 private key");
  checkLength(publicKey, 32, "X25519 public key");
  let out: Uint8Array;
  try {
    out = nobleX25519.getSharedSecret(privateKey, publicKey);
  } catch (exc) {
    throw new InvalidKey(`X25519 failed: ${(exc as Error).message}`);
  }
  if (isZero(out)) throw new InvalidKey("X25519 failed: all-zero shared secret");
  return out;
}

/** Ed25519 public key of a 32-byte private seed (RFC 8032). */
export function ed25519Public(seed: Uint8Array): Uint8Array {
  checkLength(seed, 32, "Ed25519 seed");
  return ed25519.getPublicKey(seed);
}

export function ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  checkLength(seed, 32, "Ed25519 seed");
  return ed25519.sign(message, seed);
}

/**
 * Throw InvalidSignature unless `signature` is valid for `message` under `publicKey`.
 * Strict RFC 8032 decoding (zip215: false), as OpenSSL/pyca verify.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  let ok = false;
  try {
    ok =
      publicKey instanceof Uint8Array &&
      signature instanceof Uint8Array &&
      publicKey.length === 32 &&
      signature.length === 64 &&
      ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new InvalidSignature("Ed25519 signature does not verify");
}

/**
 * Map an Ed25519 public key to its X25519 (Montgomery u) form, u = (1+y)/(1-y) mod p
 * (noble's birational map). The key must decode as a curve point (RFC 8032, y < p);
 * the neutral element (y = 1) has no u.
 */
export function ed25519PublicToX25519(publicKey: Uint8Array): Uint8Array {
  checkLength(publicKey, 32, "Ed25519 public key");
  let u: Uint8Array;
  try {
    u = ed25519.utils.toMontgomery(publicKey);
  } catch (exc) {
    throw new InvalidKey(`Ed25519 public key has no X25519 form: ${(exc as Error).message}`);
  }
  // y = 1 gives 1 - y = 0: noble's field division by zero yields 0 or throws.
  if (isZero(u)) throw new InvalidKey("Ed25519 public key has no X25519 form");
  return u;
}

/** X25519 private key of an Ed25519 seed: SHA-512(seed)[0:32] (X25519 clamps it). */
export function ed25519SeedToX25519Private(seed: Uint8Array): Uint8Array {
  checkLength(seed, 32, "Ed25519 seed");
  return sha512(seed).slice(0, 32);
}
